// Labels past each face's view over the person: runtime/beyond_view.py on ONNX Runtime Web.
//
// A person segmenter (MediaPipe's selfie segmenter, its ONNX graph as the Python runtime ships it) says which
// pixels show a person. Each such pixel outside every view, in a part of the person mask that touches a view,
// takes the class of the nearest hair, hat, neck or cloth pixel of a view (the neck going on as cloth).

import { footprint, resizeArea, roundHalfEven } from './geometry.js';

export class PersonSegmenter {
  /** `session`: an ONNX Runtime Web session of the segmenter; `settings`: the manifest's "person". */
  constructor(ort, session, settings) {
    this.ort = ort;
    this.session = session;
    this.settings = settings;
  }

  /** Which pixels of an RGBA frame show a person: a PersonMask. */
  async mask(image) {
    const [sw, sh] = this.settings.input_size,
      small =
        image.width >= sw && image.height >= sh
          ? resizeArea(decimated(image, sw, sh), sw, sh)
          : resizeLinear(image, sw, sh), // enlarged along a side: there is nothing to average
      plane = sw * sh,
      blob = new Float32Array(3 * plane),
      scale = Math.fround(1 / 255);
    for (let i = 0; i < plane; i++)
      for (let c = 0; c < 3; c++) blob[c * plane + i] = small.data[small.channels * i + c] * scale;
    const out = await this.session.run({ image: new this.ort.Tensor('float32', blob, [1, 3, sh, sw]) });
    const mask = new PersonMask(out.person.data.slice(), sw, sh, image.width, image.height, this.settings.threshold);
    out.person.dispose?.();
    return mask;
  }
}

/** The segmenter's probabilities enlarged to the frame as cv2.resize(..., INTER_LINEAR) does, above the threshold:
 * `at(x, y)` for one frame pixel, computed only where asked (the continuation needs few of the frame's pixels). */
export class PersonMask {
  constructor(probability, sw, sh, width, height, threshold) {
    Object.assign(this, { probability, sw, sh, width, height, threshold });
    this.xt = linearTaps(width, sw);
    this.yt = linearTaps(height, sh);
  }

  at(x, y) {
    return bilinear(this.probability, this.sw, this.sh, 1, 0, this.xt, this.yt, x, y) > this.threshold;
  }
}

/** The frame shrunk by the largest whole factor that keeps it at least sw x sh (beyond_view.decimated). */
function decimated(image, sw, sh) {
  const k = Math.max(1, Math.min(Math.floor(image.width / sw), Math.floor(image.height / sh)));
  if (k === 1) return image;
  const w = Math.floor(image.width / k),
    h = Math.floor(image.height / k);
  return resizeArea(image, w, h, [0, 0, w * k, h * k]);
}

/** cv2.resize(..., INTER_LINEAR) of an RGBA image (in float; OpenCV's fixed-point weights differ by a level at
 * most), alpha opaque. */
function resizeLinear(image, width, height) {
  const { data: src, width: w, height: h, channels: ch } = image,
    xt = linearTaps(width, w),
    yt = linearTaps(height, h),
    data = new Uint8ClampedArray(width * height * 4);
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++) {
      const o = 4 * (y * width + x);
      for (let c = 0; c < 3; c++) data[o + c] = bilinear(src, w, h, ch, c, xt, yt, x, y);
      data[o + 3] = 255;
    }
  return { data, width, height, channels: 4 };
}

/** `labels` (the frame's, 0 outside every view; a new array is returned) with hair, hat and cloth continued past the
 * `views` (their crop matrices) over the `person` mask (a PersonMask). */
export function continuedLabels(labels, w, h, views, person, settings) {
  const inViews = new Uint8Array(w * h);
  for (const m of views) {
    const region = footprint(m, h, w);
    if (!region) continue;
    const [x0, y0, x1, y1] = region;
    for (let y = y0; y < y1; y++) {
      // unit view coordinates of the pixel centres along the row (geometry.apply, unrolled)
      let u = m[0] * (x0 + 0.5) + m[1] * (y + 0.5) + m[2],
        v = m[3] * (x0 + 0.5) + m[4] * (y + 0.5) + m[5];
      for (let x = x0; x < x1; x++, u += m[0], v += m[3])
        if (u >= 0 && u < 1 && v >= 0 && v < 1) inViews[y * w + x] = 1;
    }
  }
  const scale = Math.min(1, settings.work_side / Math.max(h, w)),
    sw = Math.max(1, roundHalfEven(w * scale)),
    sh = Math.max(1, roundHalfEven(h * scale));
  const smallLabels = resizeNearest(labels, w, h, sw, sh),
    smallViews = resizeNearest(inViews, w, h, sw, sh),
    smallPerson = new Uint8Array(sw * sh); // the frame's mask sampled as resizeNearest samples
  for (let y = 0; y < sh; y++)
    for (let x = 0; x < sw; x++)
      smallPerson[y * sw + x] = person.at(Math.min(Math.floor((x * w) / sw), w - 1), Math.min(Math.floor((y * h) / sh), h - 1));
  const continued = new Set(settings.continued);
  const seedClass = new Uint8Array(sw * sh);
  let anySeed = false;
  for (let i = 0; i < sw * sh; i++)
    if (smallViews[i] && continued.has(smallLabels[i])) {
      seedClass[i] = smallLabels[i] === settings.neck ? settings.cloth : smallLabels[i];
      anySeed = true;
    }
  if (!anySeed) return labels;
  const nearest = nearestSeed(seedClass, sw, sh);
  const parts = components(smallPerson, smallViews, sw, sh);
  const grown = new Uint8Array(sw * sh);
  for (let i = 0; i < sw * sh; i++) if (parts[i]) grown[i] = seedClass[nearest[i]];
  const result = labels.slice();
  for (let y = 0; y < h; y++) {
    const gy = Math.min(Math.floor((y * sh) / h), sh - 1) * sw;
    for (let x = 0; x < w; x++) {
      const i = y * w + x;
      if (inViews[i] || labels[i]) continue;
      const c = grown[gy + Math.min(Math.floor((x * sw) / w), sw - 1)];
      if (c && person.at(x, y)) result[i] = c;
    }
  }
  return result;
}

/** cv2.resize(..., INTER_NEAREST) of a one-channel byte image. */
function resizeNearest(src, w, h, dw, dh) {
  const out = new Uint8Array(dw * dh);
  for (let y = 0; y < dh; y++) {
    const row = Math.min(Math.floor((y * h) / dh), h - 1) * w;
    for (let x = 0; x < dw; x++) out[y * dw + x] = src[row + Math.min(Math.floor((x * w) / dw), w - 1)];
  }
  return out;
}

/** For each of n output positions along a side of length `length`: the source index and the weight of the next
 * one, as cv2.resize(..., INTER_LINEAR) samples (pixel centres aligned, clamped at the ends). */
function linearTaps(n, length) {
  const index = new Int32Array(n),
    weight = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const s = ((i + 0.5) * length) / n - 0.5;
    let i0 = Math.floor(s),
      f = s - i0;
    if (i0 < 0) [i0, f] = [0, 0];
    if (i0 >= length - 1) [i0, f] = [length - 1, 0];
    index[i] = i0;
    weight[i] = f;
  }
  return { index, weight };
}

/** Channel c of the w x h image `src` (ch channels) at output pixel (x, y), from that pixel's taps along x and y. */
function bilinear(src, w, h, ch, c, xt, yt, x, y) {
  const a = yt.index[y] * w,
    b = Math.min(yt.index[y] + 1, h - 1) * w,
    x0 = xt.index[x],
    x1 = Math.min(x0 + 1, w - 1),
    fx = xt.weight[x];
  const top = src[(a + x0) * ch + c] + fx * (src[(a + x1) * ch + c] - src[(a + x0) * ch + c]),
    bottom = src[(b + x0) * ch + c] + fx * (src[(b + x1) * ch + c] - src[(b + x0) * ch + c]);
  return top + yt.weight[y] * (bottom - top);
}

/** Each pixel's nearest seed (the index of a pixel whose `seeds` value is non-zero): the two-pass 5x5 chamfer
 * distance that cv2.distanceTransformWithLabels(DIST_L2, 5) uses (steps 1, 1.4 and 2.1969). The grid is padded
 * by two pixels that no pass ever takes, so the unrolled inner step needs no bounds checks. */
function nearestSeed(seeds, w, h) {
  const W = w + 4,
    distance = new Float32Array(W * (h + 4)).fill(1e9),
    nearest = new Int32Array(W * (h + 4));
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++)
      if (seeds[y * w + x]) {
        distance[(y + 2) * W + x + 2] = 0;
        nearest[(y + 2) * W + x + 2] = y * w + x;
      }
  const [a, b, c] = [1, 1.4, 2.1969];
  // p's neighbours at offsets o1..o8 (steps a, a, b, b, c, c, c, c): take the nearest seed through any of them
  const relax = (p, o1, o2, o3, o4, o5, o6, o7, o8) => {
    let best = distance[p],
      from = -1,
      d;
    if ((d = distance[p + o1] + a) < best) (best = d), (from = p + o1);
    if ((d = distance[p + o2] + a) < best) (best = d), (from = p + o2);
    if ((d = distance[p + o3] + b) < best) (best = d), (from = p + o3);
    if ((d = distance[p + o4] + b) < best) (best = d), (from = p + o4);
    if ((d = distance[p + o5] + c) < best) (best = d), (from = p + o5);
    if ((d = distance[p + o6] + c) < best) (best = d), (from = p + o6);
    if ((d = distance[p + o7] + c) < best) (best = d), (from = p + o7);
    if ((d = distance[p + o8] + c) < best) (best = d), (from = p + o8);
    if (from >= 0) (distance[p] = best), (nearest[p] = nearest[from]);
  };
  for (let y = 0; y < h; y++) // forward: the neighbours visited before in raster order
    for (let x = 0, p = (y + 2) * W + 2; x < w; x++, p++)
      relax(p, -1, -W, -W - 1, -W + 1, -2 * W - 1, -2 * W + 1, -W - 2, -W + 2);
  for (let y = h - 1; y >= 0; y--) // backward: the mirror image
    for (let x = w - 1, p = (y + 2) * W + w + 1; x >= 0; x--, p--)
      relax(p, 1, W, W + 1, W - 1, 2 * W + 1, 2 * W - 1, W + 2, W - 2);
  const out = new Int32Array(w * h);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) out[y * w + x] = nearest[(y + 2) * W + x + 2];
  return out;
}

/** 1 where a pixel of (person or views) lies in an 8-connected part that holds a view's pixel, else 0. */
function components(person, views, w, h) {
  const keep = new Uint8Array(w * h),
    stack = new Int32Array(w * h); // each pixel enters at most once
  let top = 0;
  for (let i = 0; i < w * h; i++) if (views[i]) (keep[i] = 1), (stack[top++] = i);
  while (top) {
    const i = stack[--top],
      x = i % w,
      y = (i - x) / w;
    for (let ny = Math.max(0, y - 1); ny <= Math.min(h - 1, y + 1); ny++)
      for (let nx = Math.max(0, x - 1); nx <= Math.min(w - 1, x + 1); nx++) {
        const j = ny * w + nx;
        if (!keep[j] && (person[j] || views[j])) (keep[j] = 1), (stack[top++] = j);
      }
  }
  return keep;
}
