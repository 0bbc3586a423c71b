// Label maps as palette PNGs in the CelebAMask-HQ colours: what `faceparse-edge image` writes (fileio.write_label_png).

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(bytes) {
  let c = 0xffffffff;
  for (const b of bytes) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type, data) {
  const out = new Uint8Array(12 + data.length),
    view = new DataView(out.buffer);
  view.setUint32(0, data.length);
  out.set(
    [...type].map((ch) => ch.charCodeAt(0)),
    4,
  );
  out.set(data, 8);
  view.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
  return out;
}

/** A PNG Blob of `labels` (width x height class ids), 8-bit palette with `palette` (RGB rows) padded to 256. */
export async function labelPng(labels, width, height, palette) {
  const header = new Uint8Array(13),
    view = new DataView(header.buffer);
  view.setUint32(0, width);
  view.setUint32(4, height);
  header.set([8, 3, 0, 0, 0], 8); // 8 bits, palette colour, deflate, no filter method extras, no interlace
  const plte = new Uint8Array(256 * 3);
  palette.forEach((rgb, i) => plte.set(rgb, 3 * i));
  const raw = new Uint8Array((width + 1) * height); // each row: filter type 0, then its class ids
  for (let y = 0; y < height; y++) raw.set(labels.subarray(y * width, (y + 1) * width), y * (width + 1) + 1);
  const zlib = new Uint8Array(
    await new Response(new Blob([raw]).stream().pipeThrough(new CompressionStream('deflate'))).arrayBuffer(),
  );
  const signature = new Uint8Array([137, 80, 78, 71, 13, 10, 26, 10]);
  return new Blob(
    [signature, chunk('IHDR', header), chunk('PLTE', plte), chunk('IDAT', zlib), chunk('IEND', new Uint8Array())],
    { type: 'image/png' },
  );
}
