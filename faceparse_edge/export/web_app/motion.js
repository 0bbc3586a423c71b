// Face motion between frames: runtime/motion.py. Tracks follow their face between detections, smoothed
// probabilities move with the face before they are blended, and cuts to a new shot are found.
//
// The Python runtime's dense flow is OpenCV's DIS; the browser has no OpenCV, so the flow here is a dense
// coarse-to-fine Lucas-Kanade over the same small grey crop (3 pyramid levels, 5x5 windows): the same
// backward flow, previous = current + flow, in unit crop coordinates.

import { resizeArea, warpCrop } from './geometry.js';

/** An RGBA frame as 8-bit grey (cv2.COLOR_RGB2GRAY's fixed-point weights). */
export function toGray(image) {
  const n = image.width * image.height,
    data = new Uint8Array(n),
    src = image.data,
    ch = image.channels;
  for (let i = 0, s = 0; i < n; i++, s += ch)
    data[i] = (src[s] * 4899 + src[s + 1] * 9617 + src[s + 2] * 1868 + 8192) >> 14;
  return { data, width: image.width, height: image.height, channels: 1 };
}

/** A frame's grey thumbnail (motion.CUT_SIZE) for cut detection: made once per frame, compared with the next. */
export function thumbnail(gray, settings) {
  const [w, h] = settings.cut_size;
  return resizeArea(gray, w, h).data;
}

/** True when the frame of thumbnail `now` starts a new shot (motion.is_cut): no motion connects the faces across it. */
export function isCut(before, now, settings) {
  let sum = 0;
  for (let i = 0; i < now.length; i++) sum += Math.abs(now[i] - before[i]);
  return sum / now.length > settings.cut_levels;
}

/** Bilinear sample of an n x n plane at (x, y), edge values repeated beyond the border. */
function bilinear(data, n, x, y) {
  x = x < 0 ? 0 : x > n - 1 ? n - 1 : x;
  y = y < 0 ? 0 : y > n - 1 ? n - 1 : y;
  const x0 = Math.min(x | 0, n - 2),
    y0 = Math.min(y | 0, n - 2),
    fx = x - x0,
    fy = y - y0,
    i = y0 * n + x0;
  return (1 - fy) * ((1 - fx) * data[i] + fx * data[i + 1]) + fy * ((1 - fx) * data[i + n] + fx * data[i + n + 1]);
}

function halve(data, n) {
  const m = n >> 1,
    out = new Float32Array(m * m);
  for (let y = 0; y < m; y++)
    for (let x = 0; x < m; x++) {
      const i = 2 * y * n + 2 * x;
      out[y * m + x] = 0.25 * (data[i] + data[i + 1] + data[i + n] + data[i + n + 1]);
    }
  return out;
}

/** In place: each value replaced by the sum over its (2r+1)^2 window, clipped at the border (`tmp`: scratch). */
function boxSum(values, n, r, tmp) {
  for (let y = 0; y < n; y++) {
    const row = y * n;
    for (let x = 0; x < n; x++) {
      let s = 0;
      for (let i = Math.max(0, x - r), e = Math.min(n - 1, x + r); i <= e; i++) s += values[row + i];
      tmp[row + x] = s;
    }
  }
  for (let y = 0; y < n; y++) {
    for (let x = 0; x < n; x++) {
      let s = 0;
      for (let j = Math.max(0, y - r), e = Math.min(n - 1, y + r); j <= e; j++) s += tmp[j * n + x];
      values[y * n + x] = s;
    }
  }
}

/** Backward flow (n, n, 2) in pixels: before(p + flow(p)) ~ now(p), for two n x n grey images. */
export function denseFlow(now, before, n, levels = 3, iterations = 3, radius = 2) {
  const pyramid = [[Float32Array.from(now), Float32Array.from(before), n]];
  for (let l = 1; l < levels; l++) {
    const [a, b, size] = pyramid[l - 1];
    pyramid.push([halve(a, size), halve(b, size), size >> 1]);
  }
  let flow = null;
  const sums = Array.from({ length: 6 }, () => new Float32Array(n * n));
  for (let l = levels - 1; l >= 0; l--) {
    const [a, b, size] = pyramid[l],
      count = size * size;
    const next = new Float32Array(count * 2);
    if (flow) {
      // the coarser level's flow, twice as long, at each pixel's parent
      const parent = size >> 1;
      for (let y = 0; y < size; y++)
        for (let x = 0; x < size; x++) {
          const p = (Math.min(y >> 1, parent - 1) * parent + Math.min(x >> 1, parent - 1)) * 2,
            o = (y * size + x) * 2;
          next[o] = 2 * flow[p];
          next[o + 1] = 2 * flow[p + 1];
        }
    }
    flow = next;
    const [sxx, sxy, syy, sxe, sye, tmp] = sums,
      warped = new Float32Array(count);
    for (let it = 0; it < iterations; it++) {
      for (let i = 0, y = 0; y < size; y++)
        for (let x = 0; x < size; x++, i++) {
          warped[i] = bilinear(b, size, x + flow[2 * i], y + flow[2 * i + 1]);
        }
      for (let i = 0, y = 0; y < size; y++)
        for (let x = 0; x < size; x++, i++) {
          const gx = 0.5 * (warped[y * size + Math.min(x + 1, size - 1)] - warped[y * size + Math.max(x - 1, 0)]);
          const gy = 0.5 * (warped[Math.min(y + 1, size - 1) * size + x] - warped[Math.max(y - 1, 0) * size + x]);
          const e = warped[i] - a[i];
          sxx[i] = gx * gx;
          sxy[i] = gx * gy;
          syy[i] = gy * gy;
          sxe[i] = gx * e;
          sye[i] = gy * e;
        }
      for (const v of [sxx, sxy, syy, sxe, sye]) boxSum(v, size, radius, tmp);
      for (let i = 0; i < count; i++) {
        const p = sxx[i] + 1e-2,
          q = syy[i] + 1e-2,
          det = p * q - sxy[i] * sxy[i];
        flow[2 * i] -= (q * sxe[i] - sxy[i] * sye[i]) / det;
        flow[2 * i + 1] -= (p * sye[i] - sxy[i] * sxe[i]) / det;
      }
    }
  }
  return flow;
}

/** Where each point of a face's crop in the current frame was in the previous frame (motion.CropFlow). */
export function cropFlow(previousGray, gray, crop, size) {
  const now = warpCrop(gray, crop, size).data,
    before = warpCrop(previousGray, crop, size).data;
  const c0 = size >> 2,
    c1 = size - (size >> 2);
  let change = 0;
  for (let y = c0; y < c1; y++)
    for (let x = c0; x < c1; x++) change += Math.abs(now[y * size + x] - before[y * size + x]);
  change /= (c1 - c0) * (c1 - c0);
  const flow = denseFlow(now, before, size);
  for (let i = 0; i < flow.length; i++) flow[i] /= size;
  return { flow, size, change };
}

function median(values) {
  const sorted = Float64Array.from(values).sort(),
    n = sorted.length;
  return n % 2 ? sorted[(n - 1) / 2] : 0.5 * (sorted[n / 2 - 1] + sorted[n / 2]);
}

/** The face's motion since the previous frame in unit crop coordinates: the median over the crop's centre. */
export function faceShift({ flow, size }) {
  const c0 = size >> 2,
    c1 = size - (size >> 2),
    xs = [],
    ys = [];
  for (let y = c0; y < c1; y++)
    for (let x = c0; x < c1; x++) {
      xs.push(flow[2 * (y * size + x)]);
      ys.push(flow[2 * (y * size + x) + 1]);
    }
  return [-median(xs), -median(ys)];
}

/** A face's (C, S, S) probabilities moved from its previous crop into the current one, along `motion`'s flow. */
export function warpProbs(probs, classes, s, toOld, { flow, size: n }) {
  const out = new Float32Array(probs.length),
    plane = s * s;
  const fx = new Float32Array(n * n),
    fy = new Float32Array(n * n);
  for (let i = 0; i < n * n; i++) {
    fx[i] = flow[2 * i];
    fy[i] = flow[2 * i + 1];
  }
  for (let i = 0; i < s; i++)
    for (let j = 0; j < s; j++) {
      const u = (j + 0.5) / s,
        v = (i + 0.5) / s;
      const x = toOld[0] * u + toOld[1] * v + toOld[2],
        y = toOld[3] * u + toOld[4] * v + toOld[5];
      const px = x * n - 0.5,
        py = y * n - 0.5;
      let mx = (x + bilinear(fx, n, px, py)) * s - 0.5,
        my = (y + bilinear(fy, n, px, py)) * s - 0.5;
      mx = Math.min(Math.max(mx, 0), s - 1);
      my = Math.min(Math.max(my, 0), s - 1);
      const x0 = Math.min(Math.floor(mx), s - 2),
        y0 = Math.min(Math.floor(my), s - 2),
        ax = mx - x0,
        ay = my - y0;
      const a = y0 * s + x0,
        wa = (1 - ax) * (1 - ay),
        wb = ax * (1 - ay),
        wc = (1 - ax) * ay,
        wd = ax * ay;
      for (let c = 0, o = i * s + j; c < classes; c++, o += plane) {
        const p = c * plane + a;
        out[o] = wa * probs[p] + wb * probs[p + 1] + wc * probs[p + s] + wd * probs[p + s + 1];
      }
    }
  return out;
}
