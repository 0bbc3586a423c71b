"""DeepLab-style face parser: truncated MobileNetV3-small encoder, ASPP, optional light decoder.

The parts of segmentation_models_pytorch's encoder / decoder / head composition, as the layers of
one module (FaceParser): an encoder returning its stride-4 and last features, an ASPP on the last
one (plus, in the `edge` preset, a fusion with the stride-4 feature) and a 1x1 classifier.
"""

import math
from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import FaceparseError
from .model_config import ModelConfig
from .settings import PARAM_BUDGET


# MobileNetV3-small (Howard et al. 2019, table 2): kernel, expansion, out, SE, activation, stride.
# Feature layer 0 is the stem conv (16 channels, stride 2); layers 1..11 are these blocks.
BLOCKS = (
    (3, 16, 16, True, "relu", 2),
    (3, 72, 24, False, "relu", 2),
    (3, 88, 24, False, "relu", 1),
    (5, 96, 40, True, "hswish", 2),
    (5, 240, 40, True, "hswish", 1),
    (5, 240, 40, True, "hswish", 1),
    (5, 120, 48, True, "hswish", 1),
    (5, 144, 48, True, "hswish", 1),
    (5, 288, 96, True, "hswish", 2),
    (5, 576, 96, True, "hswish", 1),
    (5, 576, 96, True, "hswish", 1),
)
MAX_LAYERS = len(BLOCKS) + 1
LOW_LEVEL_LAYER = 1  # output of the first block: stride 4


def make_divisible(value: float, divisor: int = 8) -> int:
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


class ConvBNAct(nn.Sequential):
    def __init__(self, cin, cout, kernel=1, stride=1, dilation=1, groups=1, act=nn.ReLU):
        padding = (kernel - 1) // 2 * dilation
        layers = [
            nn.Conv2d(cin, cout, kernel, stride, padding, dilation=dilation, groups=groups, bias=False),
            nn.BatchNorm2d(cout),
        ]
        if act is not None:
            layers.append(act(inplace=True))
        super().__init__(*layers)


class SqueezeExcite(nn.Module):
    def __init__(self, channels):
        super().__init__()
        squeeze = make_divisible(channels / 4)
        self.reduce = nn.Conv2d(channels, squeeze, 1)
        self.expand = nn.Conv2d(squeeze, channels, 1)

    def forward(self, x):
        s = F.adaptive_avg_pool2d(x, 1)
        s = F.hardsigmoid(self.expand(F.relu(self.reduce(s))))
        return x * s


class InvertedResidual(nn.Module):
    def __init__(self, cin, kernel, expanded, cout, se, act, stride, dilation):
        super().__init__()
        act_layer = nn.Hardswish if act == "hswish" else nn.ReLU
        layers = []
        if expanded != cin:
            layers.append(ConvBNAct(cin, expanded, 1, act=act_layer))
        layers.append(ConvBNAct(expanded, expanded, kernel, stride, dilation, groups=expanded, act=act_layer))
        if se:
            layers.append(SqueezeExcite(expanded))
        layers.append(ConvBNAct(expanded, cout, 1, act=None))
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        y = self.block(x)
        return x + y if self.residual else y


class MobileNetV3SmallEncoder(nn.Module):
    """The first `layers` feature layers of MobileNetV3-small, then `extra_blocks` copies of the
    last block as residual blocks (depth at the cheapest resolution); returns (stride-4, last)
    features."""

    def __init__(self, layers: int, width: float, output_stride: int, extra_blocks: int = 0):
        super().__init__()
        if not 2 <= layers <= MAX_LAYERS:
            raise FaceparseError(f"layers must be 2..{MAX_LAYERS}, got {layers}")
        if output_stride not in (8, 16, 32):
            raise FaceparseError(f"output stride must be 8, 16 or 32, got {output_stride}")
        stem = make_divisible(16 * width)
        modules = [ConvBNAct(3, stem, 3, stride=2, act=nn.Hardswish)]
        stride, dilation, cin = 2, 1, stem
        self.low_level_channels = stem
        for kernel, exp, out, se, act, s in BLOCKS[: layers - 1]:
            if s == 2 and stride * 2 > output_stride:
                block_stride, dilation = 1, dilation * 2
            else:
                block_stride = s
                stride *= s
            cout = make_divisible(out * width)
            modules.append(
                InvertedResidual(cin, kernel, make_divisible(exp * width), cout, se, act, block_stride, dilation)
            )
            if len(modules) == LOW_LEVEL_LAYER + 1:
                self.low_level_channels = cout
            cin = cout
        kernel, exp, _, se, act, _ = BLOCKS[layers - 2]
        for _ in range(extra_blocks):
            modules.append(InvertedResidual(cin, kernel, make_divisible(exp * width), cin, se, act, 1, dilation))
        self.layers = nn.ModuleList(modules)
        self.out_channels = cin

    def forward(self, x):
        low = x
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i == LOW_LEVEL_LAYER:
                low = x
        return low, x


class SeparableConv(nn.Sequential):
    """Depthwise 3x3 (optionally atrous) then pointwise 1x1, each with BN and ReLU."""

    def __init__(self, cin, cout, dilation=1):
        super().__init__(ConvBNAct(cin, cin, 3, dilation=dilation, groups=cin), ConvBNAct(cin, cout, 1))


class ASPP(nn.Module):
    """1x1 branch, separable 3x3 branch, separable atrous branches, image pooling, projection."""

    def __init__(self, cin, channels, rates, dropout):
        super().__init__()
        branches = [ConvBNAct(cin, channels, 1), SeparableConv(cin, channels)]
        branches += [SeparableConv(cin, channels, dilation=r) for r in rates]
        self.branches = nn.ModuleList(branches)
        self.pool = ConvBNAct(cin, channels, 1)
        self.project = nn.Sequential(ConvBNAct(channels * (len(branches) + 1), channels, 1), nn.Dropout(dropout))

    def forward(self, x):
        outs = [branch(x) for branch in self.branches]
        pooled = self.pool(F.adaptive_avg_pool2d(x, 1))
        outs.append(pooled.expand(-1, -1, x.shape[2], x.shape[3]))
        return self.project(torch.cat(outs, dim=1))


class FaceParser(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.encoder = MobileNetV3SmallEncoder(config.layers, config.width, config.output_stride, config.extra_blocks)
        rates = [config.aspp_rate_base * i for i in range(1, config.aspp_depth + 1)]
        self.aspp = ASPP(self.encoder.out_channels, config.aspp_channels, rates, config.dropout)
        head_in = config.aspp_channels
        if config.decoder_channels:
            self.low_level = ConvBNAct(self.encoder.low_level_channels, config.low_level_channels, 1)
            self.fuse = nn.Sequential(
                SeparableConv(config.aspp_channels + config.low_level_channels, config.decoder_channels),
                SeparableConv(config.decoder_channels, config.decoder_channels),
            )
            head_in = config.decoder_channels
        self.classifier = nn.Conv2d(head_in, config.num_classes, 1)
        self._init_weights()

    def _init_weights(self):
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        # each extra block's last BN scale at zero: the block adds nothing until trained, so a
        # model grown from trained weights (train --init) starts as their function
        for block in self.encoder.layers[len(self.encoder.layers) - self.config.extra_blocks:]:
            nn.init.zeros_(block.block[-1][1].weight)

    def forward(self, x):
        """Logits at the input resolution (what training scores)."""
        return F.interpolate(self.coarse_logits(x), size=x.shape[2:], mode="bilinear", align_corners=False)

    def coarse_logits(self, x):
        """Logits at the decoder's resolution (a quarter of the input with the decoder).

        Exported models output these: softmax, flip TTA and smoothing are 16x cheaper there,
        and `parsing.labels_at` upsamples once, straight to the size that is needed.
        """
        low, high = self.encoder(x)
        y = self.aspp(high)
        if self.config.decoder_channels:
            y = F.interpolate(y, size=low.shape[2:], mode="bilinear", align_corners=False)
            y = self.fuse(torch.cat([y, self.low_level(low)], dim=1))
        return self.classifier(y)


class CoarseLogits(nn.Module):
    """The deployed form of a FaceParser: its `coarse_logits` as `forward`, for export."""

    def __init__(self, model: FaceParser):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model.coarse_logits(x)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def fit_width(config: ModelConfig, budget: int = PARAM_BUDGET, low: float = 0.25, high: float = 4.0) -> ModelConfig:
    """The widest encoder (binary search on the width multiplier) whose model fits the budget."""

    def params(width):
        return count_parameters(FaceParser(replace(config, width=width)))

    if params(low) > budget:
        raise FaceparseError(
            f"this configuration cannot fit {budget:,} parameters: even width {low} has {params(low):,}"
        )
    if params(high) <= budget:
        return replace(config, width=high)
    for _ in range(14):
        mid = (low + high) / 2
        low, high = (mid, high) if params(mid) <= budget else (low, mid)
    return replace(config, width=math.floor(low * 1000) / 1000)


def build_model(config: ModelConfig, budget: int = PARAM_BUDGET) -> FaceParser:
    model = FaceParser(config)
    n = count_parameters(model)
    if n > budget:
        raise FaceparseError(f"model has {n:,} trainable parameters, over the budget of {budget:,}")
    return model
