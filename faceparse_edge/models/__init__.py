"""Models: the shipped ones (registry.py, their files in the folders here) and the one loader (loader.py)."""

from .loader import BACKENDS, RUNS_BY_DEFAULT, open_model
from .registry import (DEFAULT_MODEL, EXPORT_FILES, INT8_SUFFIX, MODELS, MODELS_DIR, TORCH_FILE, is_short_name,
                       model_dir, resolve_model, shipped_int8_models, short_names)

__all__ = ["BACKENDS", "DEFAULT_MODEL", "EXPORT_FILES", "INT8_SUFFIX", "MODELS", "MODELS_DIR", "TORCH_FILE",
           "RUNS_BY_DEFAULT", "is_short_name", "model_dir", "open_model", "resolve_model", "shipped_int8_models",
           "short_names"]
