"""The model's configuration and presets, torch-free: what `info` and the runtime read from a model file's
metadata, and what the torch model (model.py) is built from."""

from dataclasses import asdict, dataclass, fields, replace

from ..classes import NUM_CLASSES
from ..errors import FaceparseError


@dataclass(frozen=True)
class ModelConfig:
    layers: int = 7  # first K of the 12 feature layers
    extra_blocks: int = 0  # residual blocks appended at the last layer's width (start as the identity)
    width: float = 1.0  # encoder width multiplier
    output_stride: int = 16  # later stride-2 blocks become dilated beyond this
    aspp_channels: int = 256
    aspp_rate_base: int = 5  # atrous rates base*1 .. base*depth
    aspp_depth: int = 6
    dropout: float = 0.2
    decoder_channels: int = 0  # 0: plain DeepLabV3 head; >0: fuse with the stride-4 feature
    low_level_channels: int = 32
    num_classes: int = NUM_CLASSES
    input_size: int = 256
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.25, 0.25, 0.25)
    # The model's view is its face crop (CelebA-HQ's framing) widened this many times about its centre:
    # it labels hair, neck and cloth beyond the crop. An aligned image is framed so (parsing.with_context).
    context: float = 1.0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        if not isinstance(d, dict):
            raise FaceparseError(f"a model config is a JSON object, not {type(d).__name__}")
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise FaceparseError(f"unknown model config keys: {sorted(unknown)}")
        try:
            d = {**d, **{k: tuple(float(v) for v in d[k]) for k in ("mean", "std") if k in d}}
            return cls(**d)
        except (TypeError, ValueError) as exc:
            raise FaceparseError(f"malformed model config: {exc}") from None


PRESETS = {
    # The reference design: 7 of 12 layers, stride 16, wide ASPP at rates 5..30.
    "seed": ModelConfig(),
    # A DeepLabV3+-style light decoder fuses the stride-4 feature, so eyes and brows (a few
    # pixels wide at 256) survive; ASPP rates suit the 16x16 grid of a 256 input.
    "edge": ModelConfig(
        layers=9, width=1.25, output_stride=16, aspp_channels=128, aspp_rate_base=2, aspp_depth=3,
        dropout=0.1, decoder_channels=64, low_level_channels=24, input_size=256,
    ),
}
# The accurate model: eyes, brows and earrings are a few pixels wide at 256; edge's layers at 512
# (the labels' resolution), trained up from edge's weights through 384 px, see MODEL_CARD.md.
PRESETS["edge-hq"] = replace(PRESETS["edge"], input_size=512)
DEFAULT_PRESET = "edge"


def same_layers(a: ModelConfig, b: ModelConfig, any_width: bool = False) -> bool:
    """Whether two configs build the same layers (whatever their input size, normalisation and context,
    and width with `any_width`): one's weights load into the other."""
    skip = {"input_size", "mean", "std", "context"} | ({"width"} if any_width else set())
    return {k: v for k, v in a.to_dict().items() if k not in skip} == {k: v for k, v in b.to_dict().items() if k not in skip}
