"""The web app's speed in headless Chromium, beside native ONNX Runtime in the same run.

    python benchmarks/bench_web.py --media ../shared/media [--model edge] [--rounds 3]

Builds the site (`export --format web`) into runs/bench_web/, then measures, in rounds:
- model milliseconds per crop for one face with flip TTA (a batch of 2 at the model's input size),
  interleaved: in the browser on WebAssembly with 1 and 2 threads, on WebGPU where headless Chromium
  offers it (SwiftShader: WebGPU on the CPU, no GPU here), and in native ONNX Runtime with 1 and 2
  threads (sleeping between runs, as in the Python runtime; and spinning, its fastest back to back);
- then, with those pages closed, the page end to end on the shared video: Chromium decodes its 275
  frames first (untimed), then each is parsed as a video (tracking, RetinaFace every 5 frames, flip
  TTA, smoothing, labels following the person) and drawn with its HUD; FPS on the frames with one face
  and on all frames, stage milliseconds, frames with a face; and the same with the labels only inside
  the faces' views (`?follow=0`), the two interleaved. Each round parses the video twice and keeps the
  second pass (the first warms up the WebAssembly and JavaScript compilers);
- then the page's labels against the Python runtime's: the photos (inside the faces, and over all the
  labelled pixels), and the frames OpenCV decodes.
Reports medians over the rounds; writes benchmarks/results/<avx2|vnni|amx>/web.{md,json}.
"""

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

from common import MACHINE_RESULTS as RESULTS, save
from faceparse_edge.export.browser import SiteBrowser, agreement, find_chromium, start_playwright
from faceparse_edge.export.web import build_site, ort_web_version
from faceparse_edge.models import open_model, resolve_model
from faceparse_edge.runtime.pipeline import Parser
from faceparse_edge.sysinfo import cpu_times, describe, machine_info
from faceparse_edge.tables import markdown_table

VIDEO, FRAMES, FPS = "short_hamilton_clip.mp4", 275, 29.97
# In the page: the model alone on a batch, after warm-up runs; milliseconds of each timed run.
MODEL_MS_JS = """async ([batch, warm, runs]) => {
  const parser = await window.faceparseEdge.ready, size = parser.size;
  const data = new Float32Array(batch * 3 * size * size).map((_, i) => Math.sin(i));
  const feeds = { [parser.model.inputNames[0]]: new parser.ort.Tensor('float32', data, [batch, 3, size, size]) };
  const times = [];
  for (let i = 0; i < warm + runs; i++) {
    const t = performance.now();
    await parser.model.run(feeds);
    if (i >= warm) times.push(performance.now() - t);
  }
  return times;
}"""


def native_name(threads: int, spin: bool) -> str:
    return (f"native onnxruntime {threads} thread{'s' if threads > 1 else ''}"
            + (", spinning between runs" if spin else " (as the Python runtime runs it: threads sleep between runs)"))


def native_model_ms(model: str, threads: int, spin: bool, batch: int, warm: int, runs: int) -> float:
    backend = open_model(resolve_model(model, "onnxruntime"), threads=threads, spin=spin)
    size = backend.info.input_size
    x = np.sin(np.arange(batch * 3 * size * size, dtype=np.float32)).reshape(batch, 3, size, size)
    times = []
    for i in range(warm + runs):
        t = time.perf_counter()
        backend(x)
        if i >= warm:
            times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def page_end_to_end(browser, page) -> dict:
    browser.parse_frames(page)  # warm-up pass
    rows = browser.parse_frames(page)
    one = [r for r in rows if r["faces"] == 1]
    stages = list(rows[0]["timings"]) + ["draw"]
    return {"fps_one_face": len(one) / sum(r["ms"] for r in one) * 1000,
            "fps_all": len(rows) / sum(r["ms"] for r in rows) * 1000,
            "frames_with_face": sum(r["faces"] > 0 for r in rows), "one_face_frames": len(one),
            "ms_one_face": {k: statistics.mean(r["draw_ms"] if k == "draw" else r["timings"][k] for r in one) for k in stages}}


def parity(browser, page, model: str, media: Path) -> dict:
    """Label agreement with the Python runtime inside the faces' regions: each shared photo, and the frames OpenCV
    decodes from the shared video parsed as a video by both (median over frames where both show a face)."""
    python = Parser(model)
    photos = {}
    for path in sorted(p for p in media.iterdir() if p.suffix.lower() in (".jpg", ".png")):
        browser.media[path.name] = path
        web, py = browser.parse_image(page, path.name), python.parse(path)
        labelled = (web["labels"] > 0) | (py.labels > 0)
        photos[path.name] = {"faces_web": len(web["faces"]), "faces_python": len(py.faces),
                             "agreement": round(agreement(web["labels"], py), 5),
                             "agreement_labelled": round(float((web["labels"] == py.labels)[labelled].mean()), 5)}
    frames, python_rows = zip(*python.stream(media / VIDEO))
    browser.load_frames(page, frames)
    rows = browser.parse_frames(page, keep=range(len(frames)))
    agreements = [agreement(r["result"]["labels"], py) for r, py in zip(rows, python_rows) if r["faces"] and py.faces]
    return {"photos": photos, "video_opencv_frames": {
        "frames": len(rows), "with_face_web": sum(r["faces"] > 0 for r in rows),
        "with_face_python": sum(bool(py.faces) for py in python_rows),
        "agreement_median": round(float(np.median(agreements)), 4), "agreement_min": round(min(agreements), 4)}}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--media", type=Path, default=Path("../shared/media"))
    parser.add_argument("--model", default="edge")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--runs", type=int, default=20, help="Timed model runs per configuration and round.")
    parser.add_argument("--out", type=Path, default=RESULTS / "web")
    args = parser.parse_args()

    site = Path("runs/bench_web/site")
    build_site(args.model, site)
    start = cpu_times()
    model_ms = {}  # configuration -> per-round medians (ms per batch of 2)
    settings = {"labels following the person (default)": "", "labels inside the views only (?follow=0)": "?follow=0"}
    end_to_end = {name: [] for name in settings}
    playwright = start_playwright()
    try:
        with SiteBrowser(site, {VIDEO: args.media / VIDEO}, webgpu=True, playwright=playwright) as browser:
            pages = {"browser wasm 1 thread": browser.open("?threads=1"), "browser wasm 2 threads": browser.open("?threads=2")}
            webgpu = browser.open("?ep=webgpu")
            if webgpu.evaluate("!!window.faceparseEdge.page.parser"):
                pages["browser webgpu (SwiftShader)"] = webgpu
            else:  # headless Chromium without a WebGPU adapter
                print(f"WebGPU not measured: {webgpu.inner_text('#status')}")
            for r in range(args.rounds):
                for threads, spin in ((1, False), (2, False), (2, True)):
                    model_ms.setdefault(native_name(threads, spin), []).append(
                        native_model_ms(args.model, threads, spin, 2, 5, args.runs))
                for name, page in pages.items():
                    runs = 5 if "webgpu" in name else args.runs
                    model_ms.setdefault(name, []).append(statistics.median(page.evaluate(MODEL_MS_JS, [2, 5, runs])))
                print(f"model round {r + 1}/{args.rounds} done")
            for page in pages.values():  # the end-to-end pass has the browser to itself
                page.context.close()
            video_pages = {name: browser.open(query) for name, query in settings.items()}
            for page in video_pages.values():
                browser.decode_video(page, VIDEO, FRAMES, FPS)
            for r in range(args.rounds):
                for name, page in video_pages.items():
                    end_to_end[name].append(page_end_to_end(browser, page))
                    print(f"video round {r + 1}/{args.rounds}, {name}: {end_to_end[name][-1]['fps_one_face']:.1f} FPS "
                          "on one-face frames")
            matched = parity(browser, browser.open(), args.model, args.media)
            errors = list(browser.errors)
    finally:
        playwright.stop()

    machine = machine_info(2, since=start)
    rows, payload_models = [], {}
    for name, values in model_ms.items():
        per_crop = statistics.median(values) / 2
        native = statistics.median(model_ms[native_name(1 if "1 thread" in name else 2, False)]) / 2
        payload_models[name] = {"ms_per_crop": round(per_crop, 2), "per_round_ms_per_batch": [round(v, 2) for v in values],
                                "vs_native_same_threads": round(per_crop / native, 2)}
        rows.append((name, f"{per_crop:.2f}", f"{per_crop / native:.2f}x"))
    e2e = {name: {k: statistics.median(e[k] for e in runs) for k in ("fps_one_face", "fps_all", "frames_with_face")}
           for name, runs in end_to_end.items()}
    stage_ms = {name: {k: round(statistics.median(e["ms_one_face"][k] for e in runs), 2) for k in runs[0]["ms_one_face"]}
                for name, runs in end_to_end.items()}
    md = [f"# The web app in headless Chromium ({args.model}, ONNX Runtime Web {ort_web_version()})\n",
          f"Machine: {describe(machine)}\n", f"Browser: {find_chromium()} (headless; WebGPU on SwiftShader)\n",
          f"Command: `python benchmarks/bench_web.py --media {args.media} --model {args.model} --rounds {args.rounds}`; "
          f"medians of {args.rounds} rounds (the model's interleaved).\n",
          "## Model time per crop (one face with flip TTA: a batch of 2)\n",
          markdown_table(("runtime", "ms per crop", "vs native, same threads, sleeping"), rows), "",
          "## The page end to end on the shared video (wasm, 2 threads, flip TTA, detector every 5 frames, drawn)\n",
          markdown_table(("setting", "FPS, one-face frames", "FPS, all frames", "frames with a face"),
                         [(name, f"{e['fps_one_face']:.1f}", f"{e['fps_all']:.1f}", f"{e['frames_with_face']} / {FRAMES}")
                          for name, e in e2e.items()]),
          "", "Mean milliseconds per one-face frame by stage (median over rounds):\n",
          markdown_table(["setting", *next(iter(stage_ms.values()))],
                         [[name, *(f"{v:.2f}" for v in ms.values())] for name, ms in stage_ms.items()]), "",
          "## Parity with the Python runtime (both following the person)\n",
          markdown_table(("input", "faces (page / Python)", "agreement inside the faces' regions %",
                          "agreement on the pixels either labels %"),
                         [(name, f"{p['faces_web']} / {p['faces_python']}", f"{100 * p['agreement']:.3f}",
                           f"{100 * p['agreement_labelled']:.3f}") for name, p in matched["photos"].items()]
                         + [(f"{VIDEO}, frames decoded by OpenCV, parsed as a video (median / lowest over frames "
                             "where both show a face)", f"frames with a face: {video['with_face_web']} / "
                             f"{video['with_face_python']}", f"{100 * video['agreement_median']:.2f} / "
                             f"{100 * video['agreement_min']:.2f}", "") for video in [matched["video_opencv_frames"]]]), "",
          f"Console errors: {len(errors)}"]
    save(args.out, "\n".join(md), {"machine": machine, "model": args.model, "onnxruntime_web": ort_web_version(),
                                   "model_ms": payload_models, "end_to_end": {**e2e, "ms_one_face": stage_ms}, "parity": matched,
                                   "end_to_end_rounds": end_to_end, "console_errors": errors})


if __name__ == "__main__":
    main()
