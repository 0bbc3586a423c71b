"""faceparse-edge: a small face parser for edge devices (CelebAMask-HQ, 19 classes)."""

__version__ = "0.1.0"
