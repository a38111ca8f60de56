"""The run a review shows: its scores aligned to store image ids, followed incrementally while it grows.

A run being scored gains rows chunk by chunk (core.store growing runs). `follow` reads only the rows committed
since the last look, so a window refreshing twice a second costs one chunk's worth of reads, not the whole run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.store import Store


@dataclass
class RunState:
    """One run, aligned to store image ids (NaN = not scored yet)."""

    run_id: str | None
    detector: str
    default_component: str
    components: dict[str, np.ndarray]  # name -> (n_images,) by store image id
    params: dict[str, Any] = field(default_factory=dict)
    ranges: dict[str, tuple[float, float]] = field(default_factory=dict)
    map_layout: dict[str, Any] = field(default_factory=dict)  # see core.detectors.results.map_layout
    complete: bool = True  # False while it is being scored, or after a cancel or a crash (resumable)
    rows_read: int = 0  # committed rows of the stored run already in `components`
    # Kept in memory for a run scored in this session: the model, and per image id the extras the store does not
    # keep (OIAD morph strips).
    model: Any = None
    extras: dict[int, dict[str, Any]] = field(default_factory=dict)

    @property
    def scores(self) -> np.ndarray:
        return self.components[self.default_component]

    @classmethod
    def from_store(cls, store: Store, run_id: str, *, model: Any = None,
                   extras: dict[int, dict[str, Any]] | None = None) -> RunState:
        info = store.run_info(run_id)
        ranges = {k: (float(lo), float(hi)) for k, (lo, hi) in info.metadata.get("map_ranges", {}).items()}
        state = cls(run_id, info.detector, info.default_component, {}, params=info.params, ranges=ranges,
                    map_layout=info.metadata.get("map_layout") or {}, complete=info.complete, model=model,
                    extras=extras if extras is not None else {})
        state.follow(store)
        return state

    def follow(self, store: Store) -> np.ndarray:
        """Read the rows the run committed since the last call; returns their image ids. Grows the arrays when
        images were added to the project meanwhile. Completion and the colour ranges are read again."""
        ids, scores = store.run_rows_since(self.run_id, self.rows_read)
        n = store.n_images
        for name in scores:
            old = self.components.get(name)
            if old is None or old.shape[0] != n:
                grown = np.full(n, np.nan)
                if old is not None:
                    grown[:old.shape[0]] = old[:n]
                self.components[name] = grown
        for name, values in scores.items():
            self.components[name][ids] = values
        self.rows_read += len(ids)
        info = store.run_info(self.run_id)
        self.complete = info.complete
        if info.metadata.get("map_layout"):
            self.map_layout = info.metadata["map_layout"]
        ranges = info.metadata.get("map_ranges")
        if ranges:
            self.ranges = {k: (float(lo), float(hi)) for k, (lo, hi) in ranges.items()}
        return np.asarray(ids, dtype=np.int64)
