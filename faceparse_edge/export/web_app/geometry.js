// Face crops as similarity transforms, and the image resampling around them: runtime/align.py in JavaScript.
//
// A crop is an affine map m = [a, b, c, d, e, f] from frame coordinates to unit crop coordinates
// (u = a x + b y + c, v = d x + e y + f): (0, 0) is the crop's top-left corner, (1, 1) its bottom-right.
// Coordinates are continuous (pixel (i, j) covers [j, j+1) x [i, i+1)). Images are
// {data, width, height, channels} with interleaved 8-bit channels (RGBA frames, grey flow crops).

/** Python's round(): halves go to the even neighbour (sizes must match the Python runtime's). */
export function roundHalfEven(x) {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** Intersection over union of two boxes [x, y, w, h] (tracking and non-maximum suppression). */
export function iou(a, b) {
  const ix = Math.max(0, Math.min(a[0] + a[2], b[0] + b[2]) - Math.max(a[0], b[0]));
  const iy = Math.max(0, Math.min(a[1] + a[3], b[1] + b[3]) - Math.max(a[1], b[1]));
  const inter = ix * iy;
  return inter / (a[2] * a[3] + b[2] * b[3] - inter + 1e-9);
}

/** Least-squares similarity (rotation, uniform scale, translation) taking points `src` onto `dst`. */
export function fitSimilarity(src, dst) {
  const n = src.length;
  let msx = 0,
    msy = 0,
    mdx = 0,
    mdy = 0;
  for (let i = 0; i < n; i++) {
    msx += src[i][0];
    msy += src[i][1];
    mdx += dst[i][0];
    mdy += dst[i][1];
  }
  msx /= n;
  msy /= n;
  mdx /= n;
  mdy /= n;
  let norm = 0,
    dot = 0,
    cross = 0;
  for (let i = 0; i < n; i++) {
    const sx = src[i][0] - msx,
      sy = src[i][1] - msy,
      dx = dst[i][0] - mdx,
      dy = dst[i][1] - mdy;
    norm += sx * sx + sy * sy;
    dot += sx * dx + sy * dy;
    cross += sx * dy - sy * dx;
  }
  const c = dot / norm,
    s = cross / norm;
  return [c, -s, mdx - (c * msx - s * msy), s, c, mdy - (s * msx + c * msy)];
}

/** The axis-aligned square crop with top-left corner (x0, y0). */
export function square(x0, y0, side) {
  return [1 / side, 0, -x0 / side, 0, 1 / side, -y0 / side];
}

/** The crop's side in frame pixels. */
export function side(m) {
  return 1 / Math.sqrt(Math.abs(m[0] * m[4] - m[1] * m[3]));
}

export function invert(m) {
  const det = m[0] * m[4] - m[1] * m[3];
  const a = m[4] / det,
    b = -m[1] / det,
    d = -m[3] / det,
    e = m[0] / det;
  return [a, b, -(a * m[2] + b * m[5]), d, e, -(d * m[2] + e * m[5])];
}

/** m after n: the point n maps, mapped by m. */
export function compose(m, n) {
  return [
    m[0] * n[0] + m[1] * n[3],
    m[0] * n[1] + m[1] * n[4],
    m[0] * n[2] + m[1] * n[5] + m[2],
    m[3] * n[0] + m[4] * n[3],
    m[3] * n[1] + m[4] * n[4],
    m[3] * n[2] + m[4] * n[5] + m[5],
  ];
}

export function apply(m, x, y) {
  return [m[0] * x + m[1] * y + m[2], m[3] * x + m[4] * y + m[5]];
}

/** The crop's four corners in the frame, clockwise from top-left. */
export function corners(m) {
  const inverse = invert(m);
  return [
    [0, 0],
    [1, 0],
    [1, 1],
    [0, 1],
  ].map(([u, v]) => apply(inverse, u, v));
}

/** A displacement in unit crop coordinates, in frame pixels. */
export function frameVector(m, [du, dv]) {
  const det = m[0] * m[4] - m[1] * m[3];
  return [(m[4] * du - m[1] * dv) / det, (m[0] * dv - m[3] * du) / det];
}

/** The crop turned by `angle` (radians, the sense of a similarity's rotation) about its centre. */
export function rotated(m, angle) {
  const c = Math.cos(angle),
    s = Math.sin(angle);
  return compose([c, -s, 0.5 - 0.5 * c + 0.5 * s, s, c, 0.5 - 0.5 * s - 0.5 * c], m);
}

/** The crop widened `context` times about its centre: the model's view of the face (align.widened). */
export function widened(m, context) {
  const k = 1 / context;
  return context === 1 ? m : compose([k, 0, 0.5 - 0.5 * k, 0, k, 0.5 - 0.5 * k], m);
}

/** The map from `current`'s unit coordinates to `old`'s (the same frame point). */
export function relative(old, current) {
  return compose(old, invert(current));
}

/** `m` as OpenCV wants it: from frame pixel centres to the pixel centres of a size x size crop. */
export function pixels(m, size) {
  const out = m.map((v) => v * size);
  out[2] += 0.5 * (out[0] + out[1]) - 0.5;
  out[5] += 0.5 * (out[3] + out[4]) - 0.5;
  return out;
}

/** [x0, y0, x1, y1]: the frame pixels the crop covers (plus `margin`), clipped; null if it lies outside. */
export function footprint(m, height, width, margin = 0) {
  const c = corners(m);
  const xs = c.map((p) => p[0]),
    ys = c.map((p) => p[1]);
  const x0 = Math.max(Math.floor(Math.min(...xs)) - margin, 0),
    y0 = Math.max(Math.floor(Math.min(...ys)) - margin, 0);
  const x1 = Math.min(Math.ceil(Math.max(...xs)) + margin, width),
    y1 = Math.min(Math.ceil(Math.max(...ys)) + margin, height);
  return x1 > x0 && y1 > y0 ? [x0, y0, x1, y1] : null;
}

const areaTables = new Map();

/** OpenCV's INTER_AREA taps (shrinking) along one axis: for each destination index, source indices and weights,
 * flattened (start[d] .. start[d + 1] index into `index` and `weight`). Cached: video frames repeat their sizes. */
function areaTable(srcSize, dstSize) {
  const key = `${srcSize}>${dstSize}`;
  if (areaTables.has(key)) return areaTables.get(key);
  const scale = srcSize / dstSize,
    index = [],
    weight = [],
    start = [0];
  for (let dx = 0; dx < dstSize; dx++) {
    const f1 = dx * scale,
      f2 = f1 + scale,
      s1 = Math.ceil(f1),
      s2 = Math.floor(f2),
      cell = Math.min(scale, srcSize - f1);
    if (s1 - f1 > 1e-3) {
      index.push(s1 - 1);
      weight.push((s1 - f1) / cell);
    }
    for (let s = s1; s < s2; s++) {
      index.push(s);
      weight.push(1 / cell);
    }
    if (f2 - s2 > 1e-3 && s2 < srcSize) {
      index.push(s2);
      weight.push(Math.min(Math.min(f2 - s2, 1), cell) / cell);
    }
    start.push(index.length);
  }
  const table = { index: Int32Array.from(index), weight: Float32Array.from(weight), start: Int32Array.from(start) };
  if (areaTables.size > 64) areaTables.clear();
  areaTables.set(key, table);
  return table;
}

/** The rectangle [x0, y0, x1, y1) of `image` shrunk to width x height by area averaging (cv2.INTER_AREA). */
export function resizeArea(image, width, height, rect = [0, 0, image.width, image.height]) {
  if (rect[2] - rect[0] === 2 * width && rect[3] - rect[1] === 2 * height) return halved(image, rect);
  const [x0, y0, x1, y1] = rect,
    ch = image.channels,
    src = image.data,
    stride = image.width * ch,
    rowLength = width * ch;
  const xt = areaTable(x1 - x0, width),
    yt = areaTable(y1 - y0, height);
  const data = new Uint8ClampedArray(width * height * ch),
    row = new Float32Array(rowLength),
    acc = new Float32Array(rowLength);
  for (let dy = 0; dy < height; dy++) {
    acc.fill(0);
    for (let j = yt.start[dy]; j < yt.start[dy + 1]; j++) {
      // each source row of this output row, first along x
      const base = (y0 + yt.index[j]) * stride + x0 * ch,
        wy = yt.weight[j];
      if (ch === 1) {
        // grey frames (flow, cuts): the loop without the channel loop, several times faster
        for (let dx = 0; dx < width; dx++) {
          let sum = 0;
          for (let i = xt.start[dx], e = xt.start[dx + 1]; i < e; i++) sum += xt.weight[i] * src[base + xt.index[i]];
          row[dx] = sum;
        }
      } else if (ch === 4) {
        // RGBA frames: colour only (alpha is set opaque below)
        for (let dx = 0; dx < width; dx++) {
          let r = 0,
            g = 0,
            b = 0;
          for (let i = xt.start[dx], e = xt.start[dx + 1]; i < e; i++) {
            const s = base + 4 * xt.index[i],
              wx = xt.weight[i];
            r += wx * src[s];
            g += wx * src[s + 1];
            b += wx * src[s + 2];
          }
          row[4 * dx] = r;
          row[4 * dx + 1] = g;
          row[4 * dx + 2] = b;
          row[4 * dx + 3] = 255;
        }
      } else {
        for (let dx = 0; dx < width; dx++) {
          for (let k = 0; k < ch; k++) row[dx * ch + k] = 0;
          for (let i = xt.start[dx]; i < xt.start[dx + 1]; i++) {
            const s = base + xt.index[i] * ch,
              wx = xt.weight[i];
            for (let k = 0; k < ch; k++) row[dx * ch + k] += wx * src[s + k];
          }
        }
      }
      for (let i = 0; i < rowLength; i++) acc[i] += wy * row[i]; // (alpha: the weights sum to 1)
    }
    data.set(acc, dy * rowLength); // Uint8ClampedArray rounds half to even, as OpenCV's saturate_cast
  }
  return { data, width, height, channels: ch };
}

/** The rectangle [x0, y0, x1, y1) of `image` halved: OpenCV's own path for an area shrink by exactly 2, the mean of
 * each 2 x 2 block rounded half up ((a + b + c + d + 2) >> 2), where its general path rounds half to even. */
function halved(image, [x0, y0, x1, y1]) {
  const ch = image.channels,
    src = image.data,
    stride = image.width * ch,
    width = (x1 - x0) >> 1,
    height = (y1 - y0) >> 1,
    data = new Uint8ClampedArray(width * height * ch);
  for (let dy = 0, o = 0; dy < height; dy++) {
    const top = (y0 + 2 * dy) * stride + x0 * ch,
      bottom = top + stride;
    for (let dx = 0; dx < width; dx++)
      for (let k = 0; k < ch; k++, o++) {
        const i = 2 * dx * ch + k;
        data[o] = (src[top + i] + src[top + i + ch] + src[bottom + i] + src[bottom + i + ch] + 2) >> 2;
      }
  }
  return { data, width, height, channels: ch };
}

/** The size x size image that the pixel map `p` (source pixel -> crop pixel) makes of `image`:
 * bilinear with OpenCV's 1/32-pixel positions, edge pixels repeated beyond the border (RGBA: alpha set opaque). */
export function warpAffine(image, p, size) {
  const q = invert(p),
    ch = image.channels,
    w = image.width,
    h = image.height,
    src = image.data;
  const data = new Uint8ClampedArray(size * size * ch),
    stride = w * ch,
    colours = ch === 4 ? 3 : ch;
  for (let y = 0; y < size; y++) {
    let sx = q[1] * y + q[2],
      sy = q[4] * y + q[5];
    for (let x = 0; x < size; x++, sx += q[0], sy += q[3]) {
      const X = Math.round(sx * 32),
        Y = Math.round(sy * 32);
      const ix = X >> 5,
        iy = Y >> 5,
        fx = (X & 31) / 32,
        fy = (Y & 31) / 32;
      const xa = ix < 0 ? 0 : ix >= w ? w - 1 : ix,
        xb = ix + 1 < 0 ? 0 : ix + 1 >= w ? w - 1 : ix + 1;
      const ya = iy < 0 ? 0 : iy >= h ? h - 1 : iy,
        yb = iy + 1 < 0 ? 0 : iy + 1 >= h ? h - 1 : iy + 1;
      const a = ya * stride + xa * ch,
        b = ya * stride + xb * ch,
        c = yb * stride + xa * ch,
        d = yb * stride + xb * ch;
      const wa = (1 - fx) * (1 - fy),
        wb = fx * (1 - fy),
        wc = (1 - fx) * fy,
        wd = fx * fy;
      const o = (y * size + x) * ch;
      for (let k = 0; k < colours; k++)
        data[o + k] = wa * src[a + k] + wb * src[b + k] + wc * src[c + k] + wd * src[d + k];
      if (colours !== ch) data[o + 3] = 255;
    }
  }
  return { data, width: size, height: size, channels: ch };
}

/** The size x size crop that `m` describes (align.warp_crop): a crop that shrinks the frame by 1.25 or more is
 * sampled at twice its size and halved by area averaging, so that it parses as an area resize of the image does. */
export function warpCrop(image, m, size) {
  if (side(m) / size >= 1.25) return resizeArea(sampled(image, m, 2 * size), size, size);
  return sampled(image, m, size);
}

/** The crop bilinearly sampled (align._sampled): a crop much smaller than the face is taken from an
 * area-averaged copy of just the face's region, because bilinear sampling alone would alias it. */
function sampled(image, m, size) {
  const shrink = size / side(m);
  const region = shrink < 0.8 ? footprint(m, image.height, image.width, 1) : null;
  if (region) {
    const [x0, y0, x1, y1] = region;
    const rw = Math.max(1, roundHalfEven((x1 - x0) * shrink)),
      rh = Math.max(1, roundHalfEven((y1 - y0) * shrink));
    image = resizeArea(image, rw, rh, region);
    m = compose(m, [(x1 - x0) / rw, 0, x0, 0, (y1 - y0) / rh, y0]);
  }
  return warpAffine(image, pixels(m, size), size);
}

/** Class ids over the frame rectangle `box` from a face's crop probabilities (align.labels_in_frame).
 *
 * `probs`: (C, S, S) probabilities, `crop`: the crop's class ids (S x S). The argmax of the
 * log-probabilities resampled bilinearly, 0 outside the crop. Pixels whose nearest coarse pixel has a
 * 3x3 neighbourhood of one class take that class (any mix of four equal-argmax pixels keeps it);
 * only pixels near a class boundary are resampled in every channel. */
export function labelsInFrame(probs, crop, classes, s, m, box) {
  const [x0, y0, x1, y1] = box,
    bw = x1 - x0,
    bh = y1 - y0,
    n = s + 2,
    plane = s * s;
  const coarse = new Uint8Array(n * n),
    boundary = new Uint8Array(n * n);
  for (let y = 0; y < s; y++) coarse.set(crop.subarray(y * s, y * s + s), (y + 1) * n + 1);
  for (let y = 0; y < n; y++) {
    // dilate != erode over 3x3 (cells outside the padded map ignored)
    for (let x = 0; x < n; x++) {
      const c = coarse[y * n + x];
      let edge = 0;
      for (let j = Math.max(0, y - 1); j <= Math.min(n - 1, y + 1) && !edge; j++)
        for (let i = Math.max(0, x - 1); i <= Math.min(n - 1, x + 1); i++)
          if (coarse[j * n + i] !== c) {
            edge = 1;
            break;
          }
      boundary[y * n + x] = edge;
    }
  }
  // The log-probabilities with two rings of zeros (what lies outside the crop reads 0 in every channel), so that
  // the four neighbours of any position on the padded map are in the array. Only cells next to a boundary cell are
  // ever read (a pixel's four neighbours lie within one cell of its nearest one): the logarithm is taken there alone.
  const P = s + 4,
    padded = new Float32Array(classes * P * P);
  for (let y = 0; y < s; y++)
    for (let x = 0; x < s; x++) {
      let near = 0;
      for (let j = y; j <= y + 2 && !near; j++)
        for (let i = x; i <= x + 2; i++)
          if (boundary[j * n + i]) {
            near = 1;
            break;
          }
      if (!near) continue;
      for (let c = 0, i = y * s + x, o = (y + 2) * P + x + 2; c < classes; c++, i += plane, o += P * P) {
        padded[o] = Math.log(Math.max(probs[i], 1e-7));
      }
    }
  const t = pixels(compose(m, [1, 0, x0, 0, 1, y0]), s); // box pixel -> coarse pixel
  t[2] += 1;
  t[5] += 1; // the ring of zeros around the crop
  const labels = new Uint8Array(bw * bh),
    area = P * P;
  for (let y = 0; y < bh; y++) {
    let u = t[1] * y + t[2],
      v = t[4] * y + t[5];
    for (let x = 0; x < bw; x++, u += t[0], v += t[3]) {
      const ui = Math.round(u),
        vi = Math.round(v);
      if (ui < 0 || vi < 0 || ui >= n || vi >= n) continue;
      const cell = vi * n + ui;
      if (!boundary[cell]) {
        labels[y * bw + x] = coarse[cell];
        continue;
      }
      const U = Math.round(u * 32),
        V = Math.round(v * 32),
        fu = (U & 31) / 32,
        fv = (V & 31) / 32;
      const i = ((V >> 5) + 1) * P + (U >> 5) + 1; // top-left neighbour on the twice-padded map
      const wa = (1 - fu) * (1 - fv),
        wb = fu * (1 - fv),
        wc = (1 - fu) * fv,
        wd = fu * fv;
      let best = 0,
        bestValue = -Infinity;
      for (let c = 0, o = i; c < classes; c++, o += area) {
        const value = wa * padded[o] + wb * padded[o + 1] + wc * padded[o + P] + wd * padded[o + P + 1];
        if (value > bestValue) {
          bestValue = value;
          best = c;
        }
      }
      labels[y * bw + x] = best;
    }
  }
  return labels;
}
