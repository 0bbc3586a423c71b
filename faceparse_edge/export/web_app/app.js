// The page: a camera, a video file or photos through the parser, drawn with a legend and a HUD.
// window.faceparseEdge exposes the API (Parser, pixelsOf, labelPng, drawOverlay) and the page's own parser.

import {
  Parser,
  STAGES,
  drawOverlay,
  encodeResult,
  hasWasmSimd,
  hudLines,
  labelPng,
  pixelsOf,
} from './faceparse-edge.js';

const $ = (id) => document.getElementById(id);
const status = $('status'),
  canvas = $('view'),
  ctx = canvas.getContext('2d'),
  video = $('video');
const page = { parser: null, loop: null, stream: null, photo: null, fps: null };
window.faceparseEdge = { Parser, STAGES, pixelsOf, labelPng, drawOverlay, hudLines, encodeResult, hasWasmSimd, page };

function say(message, error = false) {
  status.textContent = message;
  status.className = error ? 'error' : '';
}

// ?ep=webgpu&precision=int8&tta=0&detectEvery=3&threads=1&follow=1
const query = new URLSearchParams(location.search);

function settings() {
  return {
    executionProvider: $('provider').value,
    precision: $('precision').value || 'fp32',
    tta: $('tta').checked,
    followPerson: $('follow-person').checked,
    detectEvery: Math.max(1, Number($('detect-every').value) || 1),
    threads: Number(query.get('threads')) || 0,
  };
}

/** (Re)create the page's parser with the controls' settings; the inputs stay usable if it fails. */
async function loadParser() {
  stop();
  const options = settings();
  say(`Loading the model (${options.precision}, ${options.executionProvider})…`);
  page.parser = null;
  try {
    page.parser = await Parser.create(options);
  } catch (error) {
    say(error.message, true);
    return null;
  }
  const p = page.parser,
    m = p.manifest.model;
  say(
    `Ready: ${m.config.input_size ?? m.input_size} px model, ${p.precision}, ${p.executionProvider}` +
      `${p.executionProvider === 'wasm' ? ` (${p.threads} thread${p.threads === 1 ? '' : 's'})` : ''}. ` +
      'Start the camera, or choose or drop photos or a video.',
  );
  return p;
}

function stop() {
  page.loop = null;
  if (page.stream) page.stream.getTracks().forEach((t) => t.stop());
  page.stream = null;
  video.pause();
  $('camera').textContent = 'Start camera';
}

/** Parse the playing video (camera or file) frame by frame until it ends or another input starts. */
async function run(label) {
  const parser = page.parser || (await loadParser());
  if (!parser) return;
  parser.reset();
  const token = {};
  page.loop = token;
  page.fps = null;
  let last = performance.now();
  say(`Parsing ${label}…`);
  while (page.loop === token && !video.ended) {
    if (video.paused || video.readyState < 2) {
      await new Promise((r) => setTimeout(r, 30));
      continue;
    }
    const result = await parser.parseFrame(video);
    const now = performance.now(),
      rate = 1000 / Math.max(1, now - last);
    last = now;
    page.fps = page.fps === null ? rate : 0.9 * page.fps + 0.1 * rate;
    drawOverlay(ctx, result.image, result, parser.manifest, hudLines(page.parser, result, page.fps));
    await new Promise((r) =>
      video.requestVideoFrameCallback ? video.requestVideoFrameCallback(() => r()) : requestAnimationFrame(r),
    );
  }
  if (page.loop === token) say(`Finished ${label}.`);
}

async function startCamera() {
  if (page.stream) {
    stop();
    say('Camera stopped.');
    return;
  }
  if (!navigator.mediaDevices?.getUserMedia) {
    say('No camera access here: the page must be served from localhost or https.', true);
    return;
  }
  stop();
  try {
    page.stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 }, audio: false });
  } catch (error) {
    const reason =
      {
        NotAllowedError: 'camera permission was denied',
        NotFoundError: 'no camera was found',
        NotReadableError: 'the camera is in use by another program',
      }[error.name] || error.message;
    say(`Cannot start the camera: ${reason}. Photos and video files still work.`, true);
    return;
  }
  video.srcObject = page.stream;
  await video.play();
  $('camera').textContent = 'Stop camera';
  run('the camera');
}

async function openVideo(file) {
  stop();
  video.srcObject = null;
  video.src = URL.createObjectURL(file);
  try {
    await new Promise((resolve, reject) => {
      video.onloadeddata = resolve;
      video.onerror = () => reject(new Error(`${file.name} is not a video this browser can play`));
    });
    await video.play();
  } catch (error) {
    say(error.message, true);
    return;
  }
  run(file.name);
}

async function openPhotos(files) {
  stop();
  const parser = page.parser || (await loadParser());
  if (!parser) return;
  const problems = [];
  for (const file of files) {
    let bitmap;
    try {
      bitmap = await createImageBitmap(file, { colorSpaceConversion: 'none', imageOrientation: 'from-image' });
    } catch {
      problems.push(`${file.name} is not an image this browser can read`);
      continue;
    }
    const result = await parser.parse(bitmap);
    bitmap.close();
    drawOverlay(ctx, result.image, result, parser.manifest, hudLines(parser, result, null).slice(0, 1));
    page.photo = { name: file.name.replace(/\.[^.]*$/, '') + '.png', result };
    $('download').disabled = false;
  }
  if (problems.length) say(problems.join('; '), true);
  else if (page.photo)
    say(
      `${page.photo.result.faces.length} face(s) in ${
        files.length === 1 ? files[0].name : `the last of ${files.length} photos`
      }.`,
    );
}

function openFiles(files) {
  const list = [...files];
  const videos = list.filter((f) => f.type.startsWith('video/')),
    images = list.filter((f) => !f.type.startsWith('video/'));
  if (videos.length) openVideo(videos[0]);
  else if (images.length) openPhotos(images);
}

async function download() {
  if (!page.photo) return;
  const blob = await labelPng(
    page.photo.result.labels,
    page.photo.result.width,
    page.photo.result.height,
    page.parser.manifest.palette,
  );
  const link = Object.assign(document.createElement('a'), {
    href: URL.createObjectURL(blob),
    download: page.photo.name,
  });
  link.click();
  setTimeout(() => URL.revokeObjectURL(link.href), 1000);
}

async function main() {
  window.addEventListener('unhandledrejection', (event) => {
    event.preventDefault();
    say(String(event.reason?.message || event.reason), true);
  });
  $('camera').onclick = startCamera;
  $('video-file').onchange = (e) => e.target.files.length && openVideo(e.target.files[0]);
  $('photo-files').onchange = (e) => e.target.files.length && openPhotos([...e.target.files]);
  $('download').onclick = download;
  for (const id of ['provider', 'precision', 'tta', 'follow-person', 'detect-every']) $(id).onchange = loadParser;
  document.addEventListener('dragover', (e) => {
    e.preventDefault();
    document.body.classList.add('dragging');
  });
  document.addEventListener('dragleave', () => document.body.classList.remove('dragging'));
  document.addEventListener('drop', (e) => {
    e.preventDefault();
    document.body.classList.remove('dragging');
    openFiles(e.dataTransfer.files);
  });
  if (!navigator.gpu) $('provider').querySelector('[value=webgpu]').disabled = true;
  if (query.has('ep')) $('provider').value = query.get('ep');
  if (query.has('tta')) $('tta').checked = query.get('tta') !== '0';
  if (query.has('detectEvery')) $('detect-every').value = query.get('detectEvery');
  $('controls').hidden = false;
  $('drop-hint').hidden = false;
  try {
    const manifest = await (await fetch('manifest.json')).json();
    for (const precision of Object.keys(manifest.model.files))
      $('precision').append(new Option(precision.toUpperCase(), precision));
    $('follow-person').checked = manifest.pipeline.follow_person;
  } catch {
    $('precision').append(new Option('FP32', 'fp32'));
  }
  if (query.has('precision')) $('precision').value = query.get('precision');
  if (query.has('follow')) $('follow-person').checked = query.get('follow') !== '0';
  window.faceparseEdge.ready = loadParser();
}

main();
