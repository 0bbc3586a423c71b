"""Face detectors side by side on the shared video, photos and aligned val faces.

    python benchmarks/bench_detectors.py

For each detector setting: frames of the shared video with at least one face (per shot),
faces per frame, faces found on the photos, aligned val images with a face, and
milliseconds per call (median over the video's frames, measured in interleaved rounds).
A contact sheet of every 10th frame with each detector's boxes is the check for false
positives; it shows the shared video's frames, so it goes to runs/detectors.png (git-ignored),
never into the repository. Writes benchmarks/results/<avx2|vnni|amx>/detectors.{md,json}.
"""

import argparse
import statistics
import time
from pathlib import Path

import cv2
import numpy as np

from common import MACHINE_RESULTS as RESULTS, SHOTS, save
from faceparse_edge.fileio import atomic_path, read_image
from faceparse_edge.runtime.detectors import HaarDetector, RetinaFaceDetector, YuNetDetector
from faceparse_edge.sysinfo import cpu_times, describe, machine_info
from faceparse_edge.tables import markdown_table
from faceparse_edge.toolkit.samples import list_samples

SHEET = Path(__file__).resolve().parent.parent / "runs" / "detectors.png"
SETTINGS = {"Haar 320": lambda: HaarDetector(max_side=320), "YuNet 320": lambda: YuNetDetector(max_side=320),
            "YuNet 640": lambda: YuNetDetector(max_side=640),
            "RetinaFace 320, ONNX Runtime": lambda: RetinaFaceDetector("onnxruntime", 2, max_side=320),
            "RetinaFace 320, OpenVINO": lambda: RetinaFaceDetector("openvino", 2, max_side=320),
            "RetinaFace 640, ONNX Runtime": lambda: RetinaFaceDetector("onnxruntime", 2, max_side=640)}
COLOURS = ((0, 0, 255), (0, 255, 0), (255, 128, 0), (255, 0, 255), (0, 255, 255), (255, 255, 255))
COLOUR_NAMES = ("red", "green", "blue", "magenta", "yellow", "white")


def read_video(path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    cap.release()
    return frames


def contact_sheet(frames, boxes_by_setting, path: Path, every: int = 10, columns: int = 4) -> None:
    tiles = []
    for i in range(0, len(frames), every):
        tile = cv2.cvtColor(frames[i], cv2.COLOR_RGB2BGR)
        for colour, boxes in zip(COLOURS, boxes_by_setting.values()):
            for (x, y, w, h), _ in boxes[i]:
                cv2.rectangle(tile, (int(x), int(y)), (int(x + w), int(y + h)), colour, 2)
        cv2.putText(tile, f"frame {i}", (8, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (255, 255, 255), 2)
        tiles.append(cv2.resize(tile, (320, 180)))
    tiles += [np.zeros_like(tiles[0])] * (-len(tiles) % columns)
    sheet = np.vstack([np.hstack(tiles[r : r + columns]) for r in range(0, len(tiles), columns)])
    legend = "  ".join(f"{name}: {COLOUR_NAMES[k]}" for k, name in enumerate(boxes_by_setting))
    sheet = np.vstack([np.full((30, sheet.shape[1], 3), 40, np.uint8), sheet])
    cv2.putText(sheet, legend, (8, 21), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1)
    with atomic_path(path) as tmp:
        cv2.imwrite(str(tmp), sheet, [cv2.IMWRITE_PNG_COMPRESSION, 9])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--media", default="../shared/media")
    parser.add_argument("--data", default="../shared/data/celebamask-mini")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    start = cpu_times()  # the run's CPU steal goes into the results
    cv2.setNumThreads(2)

    frames = read_video(Path(args.media) / "short_hamilton_clip.mp4")
    photos = [read_image(p) for p in sorted(Path(args.media).iterdir()) if p.suffix.lower() in (".jpg", ".png")]
    aligned = [read_image(s.image) for s in list_samples(args.data, "val")]
    detectors = {name: make() for name, make in SETTINGS.items()}
    boxes = {name: [d.detect(f) for f in frames] for name, d in detectors.items()}
    times = {name: [] for name in detectors}
    for _ in range(args.rounds):  # interleaved, so machine noise spreads over all detectors alike
        for name, d in detectors.items():
            for f in frames:
                t0 = time.perf_counter()
                d.detect(f)
                times[name].append((time.perf_counter() - t0) * 1000)
    rows = []
    for name, d in detectors.items():
        found = boxes[name]
        rows.append({
            "detector": name, "frames_with_face": sum(bool(b) for b in found),
            "frames_with_face_per_shot": [sum(bool(b) for b in found[a:z]) for a, z in SHOTS],
            "faces_per_frame": round(sum(map(len, found)) / len(frames), 2),
            "photo_faces": [len(d.detect(p)) for p in photos],
            "aligned_val_with_face": sum(bool(d.detect(a)) for a in aligned),
            "ms_median": round(statistics.median(times[name]), 2),
        })
        print(rows[-1], flush=True)
    contact_sheet(frames, boxes, SHEET)
    machine = machine_info(2, since=start)
    shots = " / ".join(f"{a}-{z - 1}" for a, z in SHOTS)
    md = ["# Face detectors on the shared material\n", f"Machine: {describe(machine)}\n",
          f"Command: `python benchmarks/bench_detectors.py`. Video: short_hamilton_clip.mp4, {len(frames)} frames "
          f"at 640x360, shots {shots}. \"320\"/\"640\": the frame scaled to that longest side before detection. "
          f"ms: median per call over {args.rounds} interleaved passes over the video. Photos: "
          f"{len(photos)} photos with one face each. Aligned: the {len(aligned)} val images. False positives: see "
          "the contact sheet that the command writes to runs/detectors.png (every 10th frame; not kept in "
          "the repository: it shows the shared video's frames).\n",
          markdown_table(("detector", "frames with a face", "per shot", "faces per frame", "faces on the photos",
                          "aligned val with a face", "ms per frame"),
                         ((r["detector"], f"{r['frames_with_face']} / {len(frames)}", r["frames_with_face_per_shot"],
                           r["faces_per_frame"], r["photo_faces"], f"{r['aligned_val_with_face']} / {len(aligned)}",
                           r["ms_median"]) for r in rows))]
    save(RESULTS / "detectors", "\n".join(md), {"machine": machine, "rows": rows})


if __name__ == "__main__":
    main()
