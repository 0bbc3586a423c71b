// faceparse-edge in the browser: the Python runtime's pipeline (runtime/pipeline.py) on ONNX Runtime Web.
//
//   import { Parser } from './faceparse-edge.js';
//   const parser = await Parser.create({ tta: true, detectEvery: 5, executionProvider: 'wasm' });
//   const { width, height, labels, faces } = await parser.parse(imageOrBitmapOrCanvas);   // one photo
//   const result = await parser.parseFrame(video);   // consecutive frames: tracking and smoothing
//
// frame -> on a cut, forget all tracks -> move each tracked face with its optical flow -> detect faces
// (every few frames), each looked at again on its upright crop, and match them to tracks -> align each face
// by its landmarks as CelebA-HQ did -> parse the crops in one batch (with their mirror images for flip TTA) ->
// blend each face's probabilities with its previous ones, moved along the flow -> turn the labels back into
// the frame -> with followPerson, continue hair, hat and cloth past the views over the person (person.js).

import {
  apply,
  corners,
  fitSimilarity,
  footprint,
  frameVector,
  invert,
  labelsInFrame,
  relative,
  rotated,
  side,
  square,
  warpCrop,
  widened,
} from './geometry.js';
import { RetinaFace } from './detector.js';
import { FaceTracker } from './tracker.js';
import { cropFlow, faceShift, isCut, thumbnail, toGray, warpProbs } from './motion.js';
import { PersonSegmenter, continuedLabels } from './person.js';
import { labelPng } from './png.js';
import { drawOverlay } from './draw.js';

export { drawOverlay, labelPng };
// ONNX Runtime Web's builds, one per execution provider: each page loads only the one it runs (WebAssembly's is
// half the size of the build that also holds WebGPU, and reaches its full speed in fewer runs).
const ORT_BUILDS = { wasm: './ort/ort.wasm.min.mjs', webgpu: './ort/ort.webgpu.min.mjs' };
// Where a frame's time goes: runtime/pipeline.PIPELINE_STAGES, after reading the frame's pixels from its source.
export const STAGES = ['read', 'track', 'detect', 'crop', 'preprocess', 'model', 'tta', 'smooth', 'paste', 'person'];
// The smallest module using a SIMD instruction (wasm-feature-detect's test): ONNX Runtime Web needs SIMD.
const SIMD_TEST = new Uint8Array([
  0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 10, 1, 8, 0, 65, 0, 253, 15, 253, 98, 11,
]);

export function hasWasmSimd() {
  return typeof WebAssembly === 'object' && WebAssembly.validate(SIMD_TEST);
}

let reader = null; // one canvas reads every frame's pixels

/** Pixels of an image element, ImageBitmap, canvas, video, VideoFrame or ImageData as
 * {data (RGBA), width, height, channels}. */
export function pixelsOf(source) {
  if (source instanceof ImageData)
    return { data: source.data, width: source.width, height: source.height, channels: 4 };
  const width = source.naturalWidth || source.videoWidth || source.displayWidth || source.width;
  const height = source.naturalHeight || source.videoHeight || source.displayHeight || source.height;
  if (!width || !height) throw new Error('the image has no pixels (not loaded, or not an image)');
  reader ||= new OffscreenCanvas(width, height).getContext('2d', { willReadFrequently: true });
  const ctx = reader;
  if (ctx.canvas.width !== width || ctx.canvas.height !== height) {
    ctx.canvas.width = width;
    ctx.canvas.height = height;
  }
  ctx.drawImage(source, 0, 0, width, height);
  const { data } = ctx.getImageData(0, 0, width, height);
  return { data, width, height, channels: 4 };
}

async function session(ort, url, what, executionProvider) {
  try {
    // Worker threads sleep between runs: spinning would take the CPU from the rest of the pipeline (as in Python).
    return await ort.InferenceSession.create(url, {
      executionProviders: [executionProvider],
      graphOptimizationLevel: 'all',
      logSeverityLevel: 3,
      extra: { session: { intra_op: { allow_spinning: '0' } } },
    });
  } catch (error) {
    throw new Error(
      `cannot load the ${what} (${url}) on ${executionProvider}: ${String(error.message || error).split('\n')[0]}`,
    );
  }
}

export class Parser {
  /** The site's parser. Options: tta (flip TTA), detectEvery (frames between detector runs), smoothing (weight
   * of a still face's previous probabilities, 0 = off), executionProvider ('wasm' or 'webgpu'), threads (WASM
   * threads, 0 = up to 4 where the page is cross-origin isolated), precision ('fp32' or 'int8' where the site
   * has it), followPerson (continue hair, hat and cloth past each face's view over the person), manifest (its
   * URL; default: the site's). */
  static async create(options = {}) {
    if (!hasWasmSimd()) {
      throw new Error(
        'this browser lacks WebAssembly SIMD, which ONNX Runtime Web needs: use a current Chrome, Edge, Firefox or Safari',
      );
    }
    const manifestUrl = new URL(options.manifest || 'manifest.json', import.meta.url);
    let manifest;
    try {
      const response = await fetch(manifestUrl);
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      manifest = await response.json();
    } catch (error) {
      throw new Error(`cannot load the site's manifest ${manifestUrl}: ${error.message}`);
    }
    const executionProvider = options.executionProvider || 'wasm';
    if (!['wasm', 'webgpu'].includes(executionProvider))
      throw new Error(`unknown execution provider '${executionProvider}': wasm or webgpu`);
    if (executionProvider === 'webgpu' && !(navigator.gpu && (await navigator.gpu.requestAdapter()))) {
      throw new Error('this browser offers no WebGPU adapter: run on WebAssembly (wasm) instead');
    }
    const precision = options.precision || 'fp32',
      file = manifest.model.files[precision];
    if (!file)
      throw new Error(`this site has no ${precision} model (it has ${Object.keys(manifest.model.files).join(', ')})`);
    const cores = navigator.hardwareConcurrency || 1;
    let ort;
    try {
      ort = await import(ORT_BUILDS[executionProvider]);
    } catch (error) {
      throw new Error(`cannot load ONNX Runtime Web (${ORT_BUILDS[executionProvider]}): ${error.message}`);
    }
    ort.env.wasm.wasmPaths = new URL('./ort/', import.meta.url).href;
    ort.env.wasm.numThreads = self.crossOriginIsolated ? options.threads || Math.min(4, cores) : 1;
    ort.env.logLevel = 'error';
    const base = new URL('.', manifestUrl);
    const model = await session(ort, new URL(file, base).href, `${precision} face parsing model`, executionProvider);
    const detector = await session(
      ort,
      new URL(manifest.detector.file, base).href,
      'RetinaFace detector',
      executionProvider,
    );
    const followPerson = options.followPerson ?? manifest.pipeline.follow_person;
    const person = followPerson
      ? new PersonSegmenter(
          ort,
          await session(ort, new URL(manifest.person.file, base).href, 'person segmenter', executionProvider),
          manifest.person,
        )
      : null;
    return new Parser(ort, manifest, model, new RetinaFace(ort, detector, manifest.detector), person, {
      ...options,
      executionProvider,
      precision,
    });
  }

  constructor(ort, manifest, model, detector, person, options) {
    const p = manifest.pipeline;
    this.ort = ort; // the ONNX Runtime Web build in use
    this.manifest = manifest;
    this.model = model;
    this.detector = detector;
    this.person = person; // the person segmenter where labels follow the person, else null
    this.tta = options.tta ?? p.tta;
    this.refine = options.refine ?? p.refine;
    this.detectEvery = Math.max(1, options.detectEvery ?? p.detect_every);
    this.smoothing = options.smoothing ?? p.smoothing;
    this.executionProvider = options.executionProvider;
    this.precision = options.precision;
    this.threads = options.executionProvider === 'wasm' ? ort.env.wasm.numThreads : 0;
    this.size = manifest.model.input_size;
    this.classes = manifest.classes.length;
    this.reset();
  }

  /** Forget tracks and smoothed probabilities (a new video, or an unrelated image). */
  reset() {
    this.tracker = new FaceTracker(this.manifest.tracker);
    this.frameIndex = 0;
    this.previousGray = null;
    this.previousThumbnail = null;
  }

  /** One photo's faces and labels: {width, height, labels (class ids, 0 where no face or person is), faces,
   * timings, image (the RGBA pixels parsed)}. */
  async parse(source) {
    this.reset();
    return this.parseFrame(source);
  }

  /** The crop (frame -> unit crop coordinates) for a detected face: runtime/crop_rule.CropRule.transform. */
  cropFor(box, landmarks) {
    const { scale, dx, dy, template } = this.manifest.crop_rule;
    const [x, y, w, h] = box,
      s = scale * h,
      cx = x + w / 2 + dx * h,
      cy = y + h / 2 + dy * h;
    const byBox = square(cx - s / 2, cy - s / 2, s);
    if (!landmarks || !template) return byBox;
    const byLandmarks = fitSimilarity(landmarks, template),
      ratio = side(byLandmarks) / side(byBox);
    // Landmarks of a face in profile crowd together: there the box sets size and place, the landmarks the rotation.
    if (!(ratio > 0.75 && ratio < 1.33)) return rotated(byBox, Math.atan2(byLandmarks[3], byLandmarks[0]));
    return byLandmarks;
  }

  /** The detections with each face's landmarks found again on its upright crop (runtime/refine.refined): the
   * face nearest the crop's centre; one the second look misses keeps its first landmarks. */
  async refined(detections, image) {
    const size = this.manifest.pipeline.refine_size,
      out = [];
    for (const found of detections) {
      const m = this.cropFor(found.box, found.landmarks),
        again = await this.detector.detect(warpCrop(image, m, size));
      if (!again.length) {
        out.push(found);
        continue;
      }
      const distance = ({ box: [x, y, w, h] }) => Math.hypot(x + w / 2 - size / 2, y + h / 2 - size / 2);
      const nearest = again.reduce((a, b) => (distance(b) < distance(a) ? b : a)),
        back = invert(m); // unit crop coordinates -> frame pixels
      out.push({ box: found.box, landmarks: nearest.landmarks.map(([x, y]) => apply(back, x / size, y / size)) });
    }
    return out;
  }

  /** Class probabilities (C x S x S each, S the model's output side) of RGBA crops at the model's input size. */
  async parseCrops(crops, timings) {
    const t0 = performance.now(),
      size = this.size,
      area = size * size,
      n = crops.length,
      batch = this.tta ? 2 * n : n;
    const { mean, std } = this.manifest.model;
    // One input buffer, reused while the batch size repeats (video).
    if (this.input?.length !== batch * 3 * area) this.input = new Float32Array(batch * 3 * area);
    const input = this.input;
    for (let i = 0; i < n; i++) {
      // (x / 255 - mean) / std, planar; the mirror image after all the crops
      const data = crops[i].data;
      for (let c = 0; c < 3; c++) {
        const scale = 1 / (255 * std[c]),
          shift = mean[c] / std[c],
          plane = (i * 3 + c) * area,
          mirror = ((n + i) * 3 + c) * area;
        for (let y = 0, o = 0; y < size; y++) {
          const row = y * size,
            flipped = mirror + row + size - 1;
          for (let x = 0; x < size; x++, o++) {
            const v = data[4 * o + c] * scale - shift;
            input[plane + o] = v;
            if (this.tta) input[flipped - x] = v;
          }
        }
      }
    }
    const t1 = performance.now();
    const feeds = { [this.model.inputNames[0]]: new this.ort.Tensor('float32', input, [batch, 3, size, size]) };
    const output = (await this.model.run(feeds))[this.model.outputNames[0]];
    const t2 = performance.now();
    const [, classes, s] = output.dims,
      plane = s * s,
      logits = output.data,
      perm = this.manifest.flip_permutation;
    if (this.probs?.length !== logits.length) this.probs = new Float32Array(logits.length);
    const probs = softmax(logits, batch, classes, plane, this.probs);
    output.dispose?.();
    const result = [];
    for (let i = 0; i < n; i++) {
      const p = probs.slice(i * classes * plane, (i + 1) * classes * plane);
      if (this.tta) {
        // the mirror's probabilities, unflipped: left/right classes swapped, columns reversed
        const m = (n + i) * classes * plane;
        for (let c = 0; c < classes; c++) {
          const from = m + perm[c] * plane;
          for (let y = 0; y < s; y++)
            for (let x = 0; x < s; x++) {
              const o = c * plane + y * s + x;
              p[o] = 0.5 * (p[o] + probs[from + y * s + s - 1 - x]);
            }
        }
      }
      result.push(p);
    }
    if (timings) {
      timings.preprocess += t1 - t0;
      timings.model += t2 - t1;
      timings.tta += performance.now() - t2;
    }
    return { probs: result, side: s };
  }

  /** One frame's faces and labels, tracked from the previous frame's (runtime/pipeline.Parser.__call__). */
  async parseFrame(source) {
    const timings = Object.fromEntries(STAGES.map((s) => [s, 0]));
    let t0 = performance.now();
    const image = pixelsOf(source),
      { width: w, height: h } = image,
      { motion, pipeline } = this.manifest;
    timings.read = performance.now() - t0;
    t0 = performance.now();
    const gray = toGray(image),
      small = thumbnail(gray, motion);
    if (this.previousGray && (this.previousGray.width !== w || this.previousGray.height !== h)) this.reset();
    if (this.previousGray && isCut(this.previousThumbnail, small, motion)) {
      this.tracker.tracks = []; // a new shot: its faces are new tracks, detected now
      this.frameIndex = 0;
    }
    const motions = this.followFaces(gray);
    let t1 = performance.now();
    timings.track = t1 - t0;
    const detecting = this.frameIndex % this.detectEvery === 0;
    if (detecting) {
      const found = await this.detector.detect(image);
      this.tracker.update(this.refine ? await this.refined(found, image) : found);
      timings.detect = performance.now() - t1;
    }
    this.previousGray = gray;
    this.previousThumbnail = small;
    // Hidden faces (below) are parsed again only when the detector has just found them.
    const tracks = this.tracker.tracks.filter((t) => detecting || t.crop);
    this.frameIndex += 1;
    let labels = new Uint8Array(w * h);
    const faces = [],
      views = [];
    if (tracks.length) {
      t0 = performance.now();
      // Each face's view: its crop widened as the model was trained to see it (hair, neck and cloth around it).
      const context = this.manifest.model.config.context ?? 1;
      const crops = tracks.map((t) => widened(this.cropFor(t.box, t.landmarks), context));
      const images = crops.map((m) => warpCrop(image, m, this.size));
      timings.crop = performance.now() - t0;
      const { probs, side: s } = await this.parseCrops(images, timings);
      tracks.forEach((track, i) => {
        const m = crops[i];
        let p = probs[i];
        t0 = performance.now();
        if (this.smoothing && motions.has(track.id)) {
          // parsed in the previous frame
          const moved = motions.get(track.id);
          // A changed face follows its new parse.
          const a = this.smoothing * Math.exp(-moved.change / motion.change_levels);
          const previous = warpProbs(track.probs, this.classes, s, relative(track.crop, m), moved);
          for (let k = 0; k < p.length; k++) p[k] = a * previous[k] + (1 - a) * p[k];
        }
        const region = footprint(m, h, w);
        t1 = performance.now();
        timings.smooth += t1 - t0;
        // The parse must confirm the face: skin and a nose (skin only for one confirmed in the previous frame).
        const cropLabels = argmax(p, this.classes, s * s);
        if (!region || !looksLikeAFace(cropLabels, pipeline, track.crop === null)) {
          if (track.probs && region)
            track.crop = null; // confirmed before: hidden, its track kept
          else this.tracker.tracks.splice(this.tracker.tracks.indexOf(track), 1);
          return;
        }
        track.probs = p;
        track.crop = m;
        const faceLabels = labelsInFrame(p, cropLabels, this.classes, s, m, region);
        const [x0, y0, x1, y1] = region,
          bw = x1 - x0;
        const areas = {};
        for (let y = y0; y < y1; y++)
          for (let x = x0; x < x1; x++) {
            const c = faceLabels[(y - y0) * bw + x - x0];
            if (c) {
              labels[y * w + x] = c; // the face's pixels over earlier faces'
              const name = this.manifest.classes[c];
              areas[name] = (areas[name] || 0) + 1;
            }
          }
        views.push(m);
        faces.push({
          trackId: track.id,
          box: track.box.slice(),
          landmarks: track.landmarks && track.landmarks.map((q) => q.slice()),
          crop: corners(m),
          region,
          areas,
        });
        timings.paste += performance.now() - t1;
      });
    }
    if (this.person && views.length) {
      t0 = performance.now();
      labels = continuedLabels(labels, w, h, views, await this.person.mask(image), this.manifest.person);
      timings.person = performance.now() - t0;
    }
    return { width: w, height: h, labels, faces, timings, image };
  }

  /** Move each parsed face's box and landmarks by its motion since the previous frame; track id -> motion. */
  followFaces(gray) {
    const motions = new Map();
    if (!this.previousGray) return motions;
    for (const track of this.tracker.tracks) {
      if (!track.crop) continue;
      const moved = cropFlow(this.previousGray, gray, track.crop, this.manifest.motion.flow_size);
      motions.set(track.id, moved);
      track.move(...frameVector(track.crop, faceShift(moved)));
    }
    return motions;
  }

  /** The label map of a parse as the palette PNG `faceparse-edge image` writes. */
  labelPng(result) {
    return labelPng(result.labels, result.width, result.height, this.manifest.palette);
  }
}

/** The HUD's two lines (runtime/draw.hud_lines): FPS when given, what runs (execution provider, threads, precision,
 * TTA, detector, whether labels follow the person) and the faces; then the model's, detection's and everything
 * else's milliseconds. */
export function hudLines(parser, result, fps) {
  const t = result.timings,
    faces = result.faces.length;
  const rest = STAGES.reduce((sum, k) => sum + t[k], 0) - t.model - t.detect;
  const engine =
    `${parser.executionProvider}${parser.executionProvider === 'wasm' ? ` ${parser.threads}T` : ''} ` +
    `${parser.precision}${parser.tta ? ' +flipTTA' : ''}  detector ${parser.detector.name}` +
    `${parser.person ? '  +person' : ''}`;
  return [
    `${fps ? `${fps.toFixed(1)} FPS  ` : ''}${engine}  ${faces ? `${faces} face${faces === 1 ? '' : 's'}` : 'no face'}`,
    `ms: model ${t.model.toFixed(1)}  detect ${t.detect.toFixed(1)}  rest ${rest.toFixed(1)}`,
  ];
}

/** A parse as plain JSON: labels as base64 bytes (row by row), faces with box, landmarks, crop corners,
 * region, areas. */
export function encodeResult(result) {
  let text = '';
  for (let i = 0; i < result.labels.length; i += 8192)
    text += String.fromCharCode.apply(null, result.labels.subarray(i, i + 8192));
  const faces = result.faces.map(({ trackId, box, landmarks, crop, region, areas }) => ({
    trackId,
    box,
    landmarks,
    crop,
    region,
    areas,
  }));
  return { width: result.width, height: result.height, labels: btoa(text), faces };
}

/** Softmax over the channels of NCHW logits into `out`, a plane at a time (contiguous memory). */
function softmax(logits, batch, classes, plane, out) {
  const max = new Float32Array(plane),
    sum = new Float32Array(plane);
  for (let b = 0; b < batch; b++) {
    const base = b * classes * plane;
    max.set(logits.subarray(base, base + plane));
    for (let c = 1; c < classes; c++) {
      const o = base + c * plane;
      for (let i = 0; i < plane; i++) if (logits[o + i] > max[i]) max[i] = logits[o + i];
    }
    sum.fill(0);
    for (let c = 0; c < classes; c++) {
      const o = base + c * plane;
      for (let i = 0; i < plane; i++) sum[i] += out[o + i] = Math.exp(logits[o + i] - max[i]);
    }
    for (let i = 0; i < plane; i++) sum[i] = 1 / sum[i];
    for (let c = 0; c < classes; c++) {
      const o = base + c * plane;
      for (let i = 0; i < plane; i++) out[o + i] *= sum[i];
    }
  }
  return out;
}

function argmax(probs, classes, plane) {
  const out = new Uint8Array(plane);
  for (let i = 0; i < plane; i++) {
    let best = 0,
      value = probs[i];
    for (let c = 1; c < classes; c++)
      if (probs[c * plane + i] > value) {
        value = probs[c * plane + i];
        best = c;
      }
    out[i] = best;
  }
  return out;
}

/** The parser's own check on a detection: enough skin and (unless needNose is off) a nose in the crop. */
function looksLikeAFace(cropLabels, { min_skin: minSkin, min_nose: minNose }, needNose) {
  let skin = 0,
    nose = 0;
  for (const c of cropLabels) {
    if (c === 1) skin++;
    else if (c === 2) nose++;
  }
  return skin / cropLabels.length >= minSkin && (nose / cropLabels.length >= minNose || !needNose);
}
