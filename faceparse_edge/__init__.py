"""faceparse-edge: a small face parser for edge devices (CelebAMask-HQ, 19 classes).

The Python API (torch-free):

    from faceparse_edge import Parser, open_model

    parser = Parser("edge")                      # a shipped model's name, or an .onnx/.xml/.safetensors file
    result = parser.parse("photo.jpg")           # or an RGB array, or a BGR one with color="bgr"
    for face in result.faces:
        face.box, face.landmarks, face.areas     # detector box, five landmarks, class name -> pixels
        face.region, face.labels, face.probs     # frame rectangle, class ids over it, crop probabilities
    result.labels                                # class ids over the whole frame (0: no face)
    for frame_bgr, result in parser.stream("video.mp4"):  # or a stream URL or a camera index
        ...
    model = open_model("edge-int8", backend="openvino")   # a bare model: float32 NCHW batch -> logits
"""

from importlib import import_module

from .classes import CLASS_NAMES

__version__ = "0.1.0"
__all__ = ["CLASS_NAMES", "Face", "FrameResult", "Parser", "open_model"]
# Imported on first use (PEP 562): `import faceparse_edge` loads no OpenCV, ONNX Runtime or OpenVINO.
_LAZY = {"open_model": ".models.loader", "Face": ".runtime.pipeline", "FrameResult": ".runtime.pipeline",
         "Parser": ".runtime.pipeline"}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_LAZY])
