"""What every sliding-window detector shares (paper 000's patch detectors and, in patch mode, paper 001's PCA
baselines): preprocessing, sliding-window geometry and the settings for them. Subclasses turn a batch of
patches into per-patch component scores. Shared by the patch and PCA families, so it lives beside them."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import torch

from core.data.images import resize_image
from core.data.patches import to_tensor
from core.detectors import settings
from core.detectors.base import Detector, Param, ProgressFn, StopFn
from core.detectors.channels import ColourChannels
from core.detectors.results import MapGeometry, ScoreResult
from core.detectors.sliding_windows import AGGREGATES, aggregate, score_sliding_windows

PATCH_PARAMS: tuple[Param, ...] = (
    Param("patch_size", 96, "side of the square patches (paper: 96)", minimum=8),
    Param("stride", 16, "sliding-window step at scoring time (paper: 16)", minimum=1),
    Param("image_size", None, "resize images to this square side first (none = keep size)", minimum=8, kind=int),
    Param("aggregate", "max", "image score from its patch scores", choices=AGGREGATES),
    settings.CHANNELS,
    settings.seed("initialisation, crops"),
    settings.DEVICE,
    settings.batch_size(64, "patches per batch"),
)


class PatchDetector(ColourChannels, Detector):
    """Base for detectors that score an image by sliding a window over it."""

    def prepare(self, images: Sequence[np.ndarray]) -> tuple[list[torch.Tensor], list[MapGeometry]]:
        """Same channels and size policy at fit and score time; geometry to overlay maps later."""
        self.channels_for(images)
        size, patch, stride = self.params["image_size"], self.params["patch_size"], self.params["stride"]
        tensors, geometry = [], []
        for img in images:
            original = (int(img.shape[0]), int(img.shape[1]))
            out = resize_image(self.convert(img), size)
            if min(out.shape[:2]) < patch:  # too small for one window: scale up just enough
                scale = patch / min(out.shape[:2])
                new = (max(patch, round(out.shape[1] * scale)), max(patch, round(out.shape[0] * scale)))
                out = cv2.resize(out, new, interpolation=cv2.INTER_LINEAR)
                out = out[:, :, None] if out.ndim == 2 else out
            tensors.append(to_tensor(out.astype(np.float32, copy=False)))
            geometry.append(MapGeometry((int(out.shape[0]), int(out.shape[1])), original, patch, stride))
        return tensors, geometry

    def patch_scores(self, patches: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-patch component values for a batch (N, C, P, P) -> name -> (N,)."""
        raise NotImplementedError

    def _score(self, images: Sequence[np.ndarray], *, progress: ProgressFn, should_stop: StopFn) -> ScoreResult:
        tensors, geometry = self.prepare(images)
        self.before_scoring()
        grids = score_sliding_windows(
            tensors, self.params["patch_size"], self.params["stride"], self.scoring_batch_size(),
            self.patch_scores, progress=progress, should_stop=should_stop)
        how = self.params["aggregate"]
        components = {
            name: np.array([aggregate(g[name], how) for g in grids], dtype=np.float64)
            for name in self.components
        }
        maps = {name: [g[name].astype(np.float32) for g in grids] for name in self.components}
        return ScoreResult(self.default_component, components, maps, geometry)

    def before_scoring(self) -> None:
        """Hook: e.g. put a network in eval mode."""

    def scoring_batch_size(self) -> int:
        return max(self.params["batch_size"], 256)
