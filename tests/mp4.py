"""Test helper: rewrite an mp4 as "faststart" (index before the media data), as streaming
encoders write them. Cut short, such a file still opens and lists every frame, which
exercises the runtime's truncated-stream path (an mp4 with its index at the end does not open)."""

import struct

CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"edts"}


def _boxes(data, start, end):
    """(kind, start, header size, size) of the boxes between start and end."""
    while start < end:
        size, kind = struct.unpack(">I4s", data[start : start + 8])
        header = 8
        if size == 1:
            size, header = struct.unpack(">Q", data[start + 8 : start + 16])[0], 16
        elif size == 0:
            size = end - start
        yield kind, start, header, size
        start += size


def _shift_chunk_offsets(moov: bytearray, start: int, end: int, shift: int) -> None:
    for kind, at, header, size in _boxes(moov, start, end):
        if kind in CONTAINERS:
            _shift_chunk_offsets(moov, at + header, at + size, shift)
        elif kind in (b"stco", b"co64"):
            body = at + header
            fmt, width = (">I", 4) if kind == b"stco" else (">Q", 8)
            for i in range(struct.unpack(">I", moov[body + 4 : body + 8])[0]):
                pos = body + 8 + i * width
                moov[pos : pos + width] = struct.pack(fmt, struct.unpack(fmt, moov[pos : pos + width])[0] + shift)


def faststart(data: bytes) -> bytes:
    """ftyp, then moov (its chunk offsets moved past itself), then everything else."""
    boxes = {kind: (start, size) for kind, start, _, size in _boxes(data, 0, len(data))}
    (fs, fsize), (ms, msize) = boxes[b"ftyp"], boxes[b"moov"]
    moov = bytearray(data[ms : ms + msize])
    _shift_chunk_offsets(moov, 8, msize, msize)
    rest = b"".join(data[s : s + z] for k, (s, z) in sorted(boxes.items(), key=lambda kv: kv[1][0])
                    if k not in (b"ftyp", b"moov"))
    return data[fs : fs + fsize] + bytes(moov) + rest
