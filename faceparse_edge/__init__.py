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

from .classes import CLASS_NAMES
from .models import open_model
from .runtime.pipeline import Face, FrameResult, Parser

__version__ = "0.1.0"
__all__ = ["CLASS_NAMES", "Face", "FrameResult", "Parser", "open_model"]
