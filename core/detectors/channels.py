"""Colour-channel preparation, decided once per detector: at the first fit the "channels" setting (auto =
RGB if any training image has colour) becomes metadata["channels_used"], which a saved model keeps, so
scoring later (or after loading) converts every image the same way."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from core.data.images import common_channels, convert_channels, resize_image
from core.data.patches import to_tensor
from core.detectors.results import MapGeometry


class ColourChannels:
    """Mixin for a Detector with a "channels" setting."""

    params: dict[str, Any]
    metadata: dict[str, Any]

    def channels_for(self, images: Sequence[np.ndarray]) -> str:
        """"gray" or "rgb": the recorded choice, or (first call) the one `images` and the setting give."""
        if "channels_used" not in self.metadata:
            choice = self.params["channels"]
            self.metadata["channels_used"] = common_channels(images) if choice == "auto" else choice
        return self.metadata["channels_used"]

    def convert(self, img: np.ndarray) -> np.ndarray:
        """`img` in the recorded channels (call `channels_for` first)."""
        return convert_channels(img, self.metadata["channels_used"])

    @property
    def n_channels(self) -> int:
        return 3 if self.metadata.get("channels_used") == "rgb" else 1

    def square_tensors(self, images: Sequence[np.ndarray]) -> tuple[torch.Tensor, list[MapGeometry]]:
        """(N, C, S, S) float32 in [0, 1], each image in the recorded channels resized to the "image_size"
        square, and where each image's map lies: what the whole-image detectors (autoencoders, GANs, cnn) see."""
        self.channels_for(images)
        size = int(self.params["image_size"])
        tensors, geometry = [], []
        for img in images:
            tensors.append(to_tensor(resize_image(self.convert(img), size).astype(np.float32, copy=False)))
            geometry.append(MapGeometry((size, size), (int(img.shape[0]), int(img.shape[1])), 1, 1))
        return torch.stack(tensors), geometry
