"""What the window shows of one run: its scores aligned to store image ids, and what stays in memory."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class RunView:
    """The scores the window shows: one run, aligned to store image ids (NaN = not scored)."""

    run_id: str | None
    detector: str
    default_component: str
    components: dict[str, np.ndarray]  # name -> (n_images,) by store image id
    params: dict[str, Any] = field(default_factory=dict)
    ranges: dict[str, tuple[float, float]] = field(default_factory=dict)
    map_layout: dict[str, Any] = field(default_factory=dict)  # see core.detectors.results.map_layout
    complete: bool = True  # False while it is being scored, or after a cancel or a crash (resumable)
    # Kept in memory for a run scored in this window: the model, and per image id the extras the store does not
    # keep (OIAD morph strips).
    model: Any = None
    extras: dict[int, dict[str, Any]] = field(default_factory=dict)
