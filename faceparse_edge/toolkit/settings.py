"""The training settings: every setting's name, default, range and help, written once (torch-free).

`train`'s options are built from this schema, a settings file (`train --config`, a run's
config.yaml, `tune`'s best.yaml) holds these names, `tune` starts its trials from these
defaults, and the library's `TrainConfig`/`AugmentConfig` take their defaults from here.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from ..errors import FaceparseError

PARAM_BUDGET = 2_000_000  # the project's limit on trainable parameters
SIZE_MULTIPLE = 32  # input sizes the encoder's strides divide evenly (the exported models' outputs need it)


@dataclass(frozen=True)
class Setting:
    name: str
    default: Any
    type: Any  # the Python type of its values (typing.Optional where None is allowed)
    help: str
    min: float | None = None
    max: float | None = None
    panel: str | None = None  # the group it is listed under in `train --help`
    flag: str | None = None  # the command-line spelling, where it is not --name-with-dashes
    multiple_of: int | None = None  # values must be multiples of this


def _model(name, type_, help_, low=None, high=None):
    return Setting(name, None, type_, help_, low, high, "Model")


def _augment(name, default, help_, low, high):
    return Setting(name, default, float, help_, low, high, "Augmentation")


TRAIN_SETTINGS = (
    Setting("data", None, Optional[Path], "Dataset directory (images/, masks/, splits/); with --resume, the run's own."),
    Setting("out_dir", Path("runs/train"), Path, "Run folder: checkpoints, metrics, curves, config.yaml.", flag="--out"),
    Setting("preset", "edge", str, "Model preset: edge (default), edge-hq (edge's layers at 512 px) or seed (the "
            "reference design); the architecture options below override its values.", panel="Model"),
    _model("width", Optional[str], "Encoder width multiplier, or 'auto' to fill the parameter budget."),
    _model("layers", Optional[int], "Encoder feature layers kept (of MobileNetV3-small's 12).", 2, 12),
    _model("extra_blocks", Optional[int], "Residual blocks appended to the encoder at its last width; they start as "
           "the identity, so --init weights with fewer grow into this model.", 0, 8),
    _model("output_stride", Optional[int], "Encoder output stride (8, 16 or 32; dilated beyond).", 8, 32),
    _model("aspp_channels", Optional[int], "ASPP channels.", 8, 1024),
    _model("aspp_rate", Optional[int], "Atrous base rate: the branches use rate x 1..depth.", 1, 64),
    _model("aspp_depth", Optional[int], "Atrous branches.", 0, 8),
    _model("decoder_channels", Optional[int], "Decoder channels fusing the stride-4 feature (0 = no decoder); --init "
           "weights with fewer grow into a wider decoder, their function kept.", 0, 512),
    _model("low_level_channels", Optional[int], "Channels of the projected stride-4 feature.", 4, 256),
    _model("dropout", Optional[float], "Dropout before the classifier.", 0, 0.9),
    Setting("budget", PARAM_BUDGET, int, "Trainable parameter budget.", 1, panel="Model"),
    _model("context", Optional[float], "The model's view: its face crop (CelebA-HQ's framing) widened this many "
           "times, so that it labels the hair, neck and cloth around the crop; training shows each image in the "
           "middle 1/context of the view (the ring beyond it not scored), the runtime widens its crops alike.", 1, 2),
    Setting("imgsz", None, Optional[int], "Training and inference input size (a multiple of 32); default: the "
            "preset's (edge 256, edge-hq 512), times --context, to the nearest multiple of 32.", 64, 2048, "Model",
            multiple_of=SIZE_MULTIPLE),
    _augment("flip", 0.5, "Probability of a mirror (left/right labels swapped).", 0, 1),
    _augment("scale", 1.25, "Zoom range: 1/scale .. scale.", 1, 4),
    _augment("rotate", 15.0, "Rotation range in degrees (+-).", 0, 180),
    _augment("translate", 0.08, "Shift range, fraction of the side (+-).", 0, 0.5),
    _augment("hue", 6.0, "Hue shift range, OpenCV units of 0..180 (+-).", 0, 90),
    _augment("saturation", 0.3, "Saturation factor range (1 +- this).", 0, 1),
    _augment("value", 0.25, "Value (HSV brightness) factor range (1 +- this).", 0, 1),
    _augment("brightness", 0.15, "Added brightness range, fraction of 255 (+-).", 0, 1),
    _augment("contrast", 0.2, "Contrast factor range (1 +- this).", 0, 1),
    Setting("epochs", 60, int, "Epochs (with --resume: the run's new total, when given).", 1),
    Setting("batch", 16, int, "Batch size (in all, over every process of a torchrun run).", 1),
    Setting("lr", 3e-3, float, "Peak learning rate.", 1e-9),
    Setting("weight_decay", 1e-4, float, "Weight decay.", 0),
    Setting("optimizer", "adamw", str, "adam or adamw."),
    Setting("scheduler", "cosine", str, "cosine, linear or plateau (all with warm-up)."),
    Setting("warmup", 2.0, float, "Warm-up epochs.", 0),
    Setting("loss", "ce:1,lovasz:0.5", str, "Weighted sum of ce, wce, lovasz, dice, jaccard."),
    Setting("lovasz_pixels", 16384, int, "Pixels sampled per batch for Lovasz-softmax (0 = all).", 0),
    Setting("patience", 0, int, "Early stopping patience in epochs (0 = off).", 0),
    Setting("seed", 0, int, "Random seed."),
    Setting("fix_left_right", True, bool, "Swap the labels of training masks whose left/right pairs are reversed."),
    Setting("device", "auto", str, "auto, cpu or cuda."),
    Setting("workers", None, Optional[int], "DataLoader worker processes that decode and augment (0 = in the main "
            "process); default: 0 on CPU, where training needs every core (benchmarks/results/avx2/scaling.md), up "
            "to 4 on CUDA.", 0, 64),
    Setting("cache", "auto", str, "Training pairs decoded once into memory: auto (when under 2 GiB), ram, or none "
            "(streamed from disk)."),
    Setting("balance", 0.0, float, "Class-balanced sampling: an image holding a class found in a share s of the "
            "images, below this threshold t, is drawn sqrt(t / s) times as often (repeat-factor sampling); 0 = off.",
            0, 1),
    Setting("init", None, Optional[str], "Start from these weights (the same architecture, any input size): a "
            ".safetensors/.pt file or a shipped model's name. Fine-tuning, or a larger --imgsz after a cheaper run."),
    Setting("distill", None, Optional[str], "Teacher weights (a .safetensors/.pt file or a shipped model's name): its "
            "flip-TTA class probabilities become soft targets beside the labels."),
    Setting("distill_weight", 1.0, float, "Weight of the cross-entropy to the teacher's soft targets.", 0),
    Setting("distill_scales", "1", str, "Input scales (comma-separated, e.g. 0.8125,1,1.1875) the teacher's flip-TTA "
            "parse is averaged over: a stronger teacher at one forward pass per scale."),
    Setting("extra_blocks_lr", 1.0, float, "Learning-rate multiplier of the --extra-blocks: grown from trained weights "
            "they start as the identity and need larger steps to leave it in a short fine-tune.", 1e-3),
    Setting("ema", 0.0, float, "Decay of an exponential moving average of the weights (e.g. 0.995), scored and saved "
            "in their place; the raw weights' val mIoU is logged beside it. 0 = off.", 0, 0.9999),
    Setting("train_split", "train", str, "Training split name."),
    Setting("val_split", "val", str, "Validation split name."),
)
DEFAULTS = {s.name: s.default for s in TRAIN_SETTINGS}


def with_defaults(settings: dict) -> dict:
    """Every training setting: the given ones (names as in TRAIN_SETTINGS, '-' or '_'), the rest at their defaults."""
    given = {key.replace("-", "_"): value for key, value in settings.items()}
    unknown = sorted(set(given) - set(DEFAULTS))
    if unknown:
        raise FaceparseError(f"unknown training settings: {', '.join(unknown)} (see faceparse_edge/toolkit/settings.py)")
    return {**DEFAULTS, **given}
