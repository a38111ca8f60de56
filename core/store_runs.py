"""Model runs of the store: scores, anomaly maps and the thresholds set on them.

A mixin of core.store.Store, split out only to keep store.py readable; it holds no state of its own and
relies on the attributes and helpers Store sets up (listed below for readers and type checkers). Runs are
written once and never change, which is why their row index can be cached (`_run_rows`).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import h5py
import numpy as np

from core.store_locking import _locked, _writer
from core.store_schema import (
    THRESHOLD_COLUMNS,
    RunInfo,
    StoreError,
    Table,
    TextHeap,
    ThresholdRecord,
    UnknownRunError,
    check_component,
    get_text_attr,
    read_text_dataset,
    set_text_attr,
    to_json,
    utc_now,
    write_maps,
    write_text_dataset,
)


class RunsMixin:
    """Scoring runs (add_run, scores, maps) and their threshold history for Store."""

    # Set up by Store.__init__ / Store._load.
    _lock: threading.RLock
    _f: h5py.File | None
    path: Path
    readonly: bool
    user: str
    _text: TextHeap
    _runs: h5py.Group
    _paths: list[str]
    _run_rows: dict[str, dict[int, int]]

    if TYPE_CHECKING:  # provided by Store
        def _commit(self, counts: Sequence[tuple[Table, int]] = ()) -> None: ...
        def _image_index(self, image: int | str | Path) -> int: ...

    # ------------------------------------------------------------------ cleanup on open
    def _cleanup_incomplete_runs(self) -> None:
        """add_run writes under a hidden name and renames when done; a hidden run left here means its
        writer died half-way, so it is dropped on the next writable open."""
        leftovers = [k for k in self._runs if k.startswith(".incomplete-")]
        for k in leftovers:
            del self._runs[k]
        if leftovers:
            self._commit()

    # ------------------------------------------------------------------ model runs
    @_writer
    def add_run(self, detector: str, params: dict, metadata: dict, image_paths: Sequence[str | Path],
                scores: dict[str, np.ndarray], default_component: str,
                maps: dict[str, list[np.ndarray | None]] | None = None) -> str:
        """Store one scoring run; returns its id ("run-0001", ...).

        scores[component] holds one score per image_paths entry. maps[component][k] is image k's 2-D map on
        its patch grid (shapes may differ); maps are stored as float16 normalised per map (see
        docs/store-format.md), gzip-compressed, one chunk per image. Everything is validated before
        anything is written; the run appears atomically (written under a hidden name, then renamed).
        """
        ids = np.array([self._image_index(p) for p in image_paths], dtype=np.int64)
        n = len(ids)
        if len(set(ids.tolist())) != n:
            raise ValueError("image_paths lists an image twice")
        if not scores:
            raise ValueError("a run needs at least one score component")
        score_arrays = {}
        for comp, vals in scores.items():
            check_component(comp)
            arr = np.asarray(vals, dtype=np.float64).reshape(-1)
            if arr.shape[0] != n:
                raise ValueError(f"scores[{comp!r}] has {arr.shape[0]} values for {n} images")
            score_arrays[comp] = arr
        if default_component not in score_arrays:
            raise ValueError(f"default component {default_component!r} is not among {sorted(score_arrays)}")
        map_lists = {}
        for comp, items in (maps or {}).items():
            check_component(comp)
            if len(items) != n:
                raise ValueError(f"maps[{comp!r}] has {len(items)} maps for {n} images")
            arrs = [None if m is None else np.asarray(m, dtype=np.float32) for m in items]
            if any(a is not None and a.ndim != 2 for a in arrs):
                raise ValueError(f"maps[{comp!r}] must hold 2-D arrays")
            map_lists[comp] = arrs
        params_json = to_json(params, "params")
        meta_json = to_json(metadata, "metadata")
        number = max([int(self._runs.attrs.get("next_run", 1))]
                     + [int(k.rsplit("-", 1)[1]) + 1 for k in self._runs if k.rsplit("-", 1)[-1].isdigit()])
        run_id = f"run-{number:04d}"
        hidden = f".incomplete-{run_id}"
        try:
            g = self._runs.create_group(hidden)
            for key, value in (("detector", detector), ("created", utc_now()), ("who", self.user),
                               ("default_component", default_component),
                               ("components", to_json(list(score_arrays), "components")),
                               ("map_components", to_json(list(map_lists), "map components"))):
                set_text_attr(g, key, value)
            write_text_dataset(g, "params_json", params_json)
            write_text_dataset(g, "metadata_json", meta_json)
            g.create_dataset("image_ids", data=ids)
            sg = g.create_group("scores")
            for comp, arr in score_arrays.items():
                sg.create_dataset(comp, data=arr)
            mg = g.create_group("maps")
            for comp, arrs in map_lists.items():
                write_maps(mg.create_group(comp), arrs)
            Table.create(g, "thresholds", THRESHOLD_COLUMNS, self._text)
            assert self._f is not None
            self._f.flush()  # the whole run is in the file before it gets its visible name
            self._runs.move(hidden, run_id)
            self._runs.attrs["next_run"] = number + 1
            self._commit()
        except (OSError, ValueError) as exc:
            raise StoreError(f"{self.path}: could not save run ({exc})") from exc
        return run_id

    def _run_group(self, run_id: str) -> h5py.Group:
        if not isinstance(run_id, str) or run_id.startswith(".") or "/" in run_id or run_id not in self._runs:
            raise UnknownRunError(f"{self.path}: no run {run_id!r}")
        return self._runs[run_id]

    @_locked
    def list_runs(self) -> list[RunInfo]:
        """Runs in creation order."""
        names = sorted((k for k in self._runs if not k.startswith(".")), key=lambda k: int(k.rsplit("-", 1)[1]))
        return [self._run_info(k) for k in names]

    @_locked
    def run_info(self, run_id: str) -> RunInfo:
        return self._run_info(run_id)

    @_locked
    def latest_run(self) -> str | None:
        runs = self.list_runs()
        return runs[-1].run_id if runs else None

    def _run_info(self, run_id: str) -> RunInfo:
        g = self._run_group(run_id)
        a = {k: get_text_attr(g, k) for k in ("detector", "created", "who", "default_component", "components",
                                               "map_components")}
        return RunInfo(run_id, a["detector"], json.loads(read_text_dataset(g, "params_json")),
                       json.loads(read_text_dataset(g, "metadata_json")), a["created"], a["who"],
                       a["default_component"], tuple(json.loads(a["components"])),
                       tuple(json.loads(a["map_components"])), int(g["image_ids"].shape[0]))

    @_locked
    def run_image_ids(self, run_id: str) -> np.ndarray:
        return self._run_group(run_id)["image_ids"][()]

    @_locked
    def run_scores(self, run_id: str) -> dict[str, np.ndarray]:
        """Every component's scores, aligned with run_image_ids(run_id)."""
        g = self._run_group(run_id)["scores"]
        return {comp: g[comp][()] for comp in g}

    @_locked
    def scores(self, run_id: str, component: str | None = None) -> np.ndarray:
        """One component (default: the run's default) aligned to image ids: index = image id, NaN for
        images the run did not score."""
        g = self._run_group(run_id)
        comp = component or get_text_attr(g, "default_component")
        if comp not in g["scores"]:
            raise StoreError(f"{self.path}: run {run_id} has no score component {comp!r}")
        out = np.full(len(self._paths), np.nan)
        out[g["image_ids"][()]] = g["scores"][comp][()]
        return out

    @_locked
    def maps(self, run_id: str, image: int | str | Path, component: str | None = None) -> dict[str, np.ndarray]:
        """Maps of one image in a run as float32, {component: 2-D array}; {} if the run stored none."""
        g = self._run_group(run_id)
        i = self._image_index(image)
        if run_id not in self._run_rows:  # runs never change once written: index them once
            self._run_rows[run_id] = {int(v): k for k, v in enumerate(g["image_ids"][()])}
        k = self._run_rows[run_id].get(i)
        if k is None:
            raise StoreError(f"{self.path}: run {run_id} did not score image {self._paths[i]}")
        comps = [component] if component is not None else list(g["maps"])
        out = {}
        for comp in comps:
            if comp not in g["maps"]:
                raise StoreError(f"{self.path}: run {run_id} has no maps for component {comp!r}")
            mg = g["maps"][comp]
            h, w = (int(v) for v in mg["shape"][k])
            out[comp] = mg["data"][k, :h, :w].astype(np.float32) * np.float32(mg["scale"][k])
        return out

    # ------------------------------------------------------------------ thresholds
    @_writer
    def set_threshold(self, run_id: str, t1: float, t2: float, method: str = "manual") -> ThresholdRecord:
        """Record the thresholds of a run; the latest record is current, older ones stay as history."""
        g = self._run_group(run_id)
        t1, t2 = float(t1), float(t2)
        if not (np.isfinite(t1) and np.isfinite(t2)) or t1 > t2:
            raise ValueError(f"thresholds need finite T1 <= T2, got T1={t1}, T2={t2}")
        rec = ThresholdRecord(run_id, t1, t2, method or "manual", self.user, utc_now())
        table = Table(g["thresholds"], self._text)
        n = table.n_rows
        try:
            table.write(n, {"t1": [t1], "t2": [t2], "method": [rec.method], "who": [rec.who],
                            "time": [rec.time.encode()]})
            self._commit([(table, n + 1)])
        except (OSError, ValueError) as exc:
            self._text.rollback()
            raise StoreError(f"{self.path}: could not save threshold ({exc})") from exc
        return rec

    @_locked
    def threshold_history(self, run_id: str) -> list[ThresholdRecord]:
        t = Table(self._run_group(run_id)["thresholds"], self._text)
        c = t.read_all()
        return [ThresholdRecord(run_id, float(c["t1"][k]), float(c["t2"][k]), c["method"][k], c["who"][k],
                                c["time"][k]) for k in range(len(c["t1"]))]

    @_locked
    def threshold(self, run_id: str) -> ThresholdRecord | None:
        history = self.threshold_history(run_id)
        return history[-1] if history else None
