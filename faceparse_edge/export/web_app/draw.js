// Overlay of a parse on a frame (runtime/draw.py): labelled pixels tinted by class, crop outlines, a legend, a HUD.

const LEGEND_WIDTH = 92;
const canvases = new WeakMap();

/** Draw `image` (RGBA) with `result` (parse()'s) over it on the 2D context `ctx`, resized to the image. */
export function drawOverlay(ctx, image, result, { classes, palette }, hud = [], alpha = 0.5) {
  const { width, height } = image,
    labels = result.labels;
  if (ctx.canvas.width !== width || ctx.canvas.height !== height) {
    ctx.canvas.width = width;
    ctx.canvas.height = height;
  }
  let pixels = canvases.get(ctx); // one ImageData per canvas, reused while the frame size stays
  if (pixels?.width !== width || pixels?.height !== height) canvases.set(ctx, (pixels = new ImageData(width, height)));
  pixels.data.set(image.data);
  const out = pixels.data,
    present = new Set();
  // every labelled pixel: the faces' and, where the labels follow the person, past their regions
  for (let i = 0; i < width * height; i++) {
    const c = labels[i];
    if (!c) continue;
    present.add(c);
    const o = 4 * i,
      colour = palette[c];
    out[o] = (1 - alpha) * out[o] + alpha * colour[0];
    out[o + 1] = (1 - alpha) * out[o + 1] + alpha * colour[1];
    out[o + 2] = (1 - alpha) * out[o + 2] + alpha * colour[2];
  }
  ctx.putImageData(pixels, 0, 0);
  ctx.strokeStyle = 'white';
  ctx.lineWidth = 1;
  for (const face of result.faces) {
    ctx.beginPath();
    face.crop.forEach(([x, y], i) => (i ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
    ctx.closePath();
    ctx.stroke();
  }
  legend(
    ctx,
    [...present].sort((a, b) => a - b),
    classes,
    palette,
  );
  ctx.font = '12px sans-serif';
  ctx.textBaseline = 'alphabetic';
  hud.forEach((line, i) => {
    const y = 18 + 18 * i,
      w = ctx.measureText(line).width;
    ctx.fillStyle = 'rgba(0, 0, 0, 0.5)';
    ctx.fillRect(6, y - 13, w + 4, 17);
    ctx.fillStyle = 'white';
    ctx.fillText(line, 8, y);
  });
}

function legend(ctx, present, classes, palette) {
  const x0 = Math.max(0, ctx.canvas.width - LEGEND_WIDTH);
  const rows = Math.min(present.length, Math.max(0, Math.floor((ctx.canvas.height - 20) / 14) + 1));
  ctx.font = '10px sans-serif';
  for (let i = 0; i < rows; i++) {
    const c = present[i],
      y = 8 + 14 * i;
    ctx.fillStyle = `rgb(${palette[c].join(',')})`;
    ctx.fillRect(x0, y, 10, 10);
    ctx.lineWidth = 3;
    ctx.strokeStyle = 'black';
    ctx.strokeText(classes[c], x0 + 14, y + 9);
    ctx.fillStyle = 'white';
    ctx.fillText(classes[c], x0 + 14, y + 9);
  }
  ctx.lineWidth = 1;
}
