"""Model runs of the store: scores, anomaly maps and the thresholds set on them.

A run is written whole (add_run: under a hidden name, then renamed) or grows chunk by chunk while a folder is
scored (begin_run, append_to_run, finish_run), so the window can show scores as they land and a cancelled or
crashed run resumes where it stopped. A growing run's attribute `n_scored` is its committed row count, moved
only after the rows are flushed (the tables' rule): a writer killed mid-chunk leaves the previous count, and
rows beyond it are ignored and overwritten on resume. Rows below it never change, which is why their index can
be cached (`_run_rows`). Every method expects the caller (core.store.store.Store) to hold the handle's lock.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np

from core.store.errors import StoreError, UnknownRunError
from core.store.format import check_component, create_table
from core.store.handle import StoreHandle
from core.store.hdf5 import get_text_attr, read_text_dataset, set_text_attr, to_json, write_text_dataset
from core.store.images import Images
from core.store.maps import append_maps, read_map, write_maps
from core.store.records import RunInfo, ThresholdRecord
from core.store.stamps import utc_now


class Runs:
    """Scoring runs (add, scores, maps) and their threshold history, under /runs. Gets the images it
    needs (to resolve ids and align scores to them) explicitly."""

    def __init__(self, handle: StoreHandle, images: Images) -> None:
        self._h = handle
        self._images = images
        self._runs: h5py.Group = handle.file["runs"]
        self._run_rows: dict[str, dict[int, int]] = {}

    # ------------------------------------------------------------------ cleanup on open
    def cleanup_incomplete(self) -> None:
        """add_run writes under a hidden name and renames when done; a hidden run left here means its
        writer died half-way, so it is dropped on the next writable open."""
        leftovers = [k for k in self._runs if k.startswith(".incomplete-")]
        for k in leftovers:
            del self._runs[k]
        if leftovers:
            self._h.commit()

    # ------------------------------------------------------------------ model runs
    def add_run(self, detector: str, params: dict, metadata: dict, image_paths: Sequence[str | Path],
                scores: dict[str, np.ndarray], default_component: str,
                maps: dict[str, list[np.ndarray | None]] | None = None) -> str:
        """Store one scoring run; returns its id ("run-0001", ...).

        scores[component] holds one score per image_paths entry. maps[component][k] is image k's 2-D map on
        its patch grid (shapes may differ); maps are stored as float16 normalised per map (see
        docs/store-format.md), gzip-compressed, one chunk per image. Everything is validated before
        anything is written; the run appears atomically (written under a hidden name, then renamed).
        """
        ids = np.array([self._images.index_of(p) for p in image_paths], dtype=np.int64)
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
        run_id, number = self._next_run_id()
        hidden = f".incomplete-{run_id}"
        try:
            g = self._runs.create_group(hidden)
            for key, value in (("detector", detector), ("created", utc_now()), ("who", self._h.user),
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
            create_table(g, "thresholds", self._h.text)
            self._h.file.flush()  # the whole run is in the file before it gets its visible name
            self._runs.move(hidden, run_id)
            self._runs.attrs["next_run"] = number + 1
            self._h.commit()
        except (OSError, ValueError) as exc:
            raise StoreError(f"{self._h.path}: could not save run ({exc})") from exc
        return run_id

    # ------------------------------------------------------------------ growing runs
    def begin_run(self, detector: str, params: dict, metadata: dict, default_component: str,
                  components: Sequence[str], map_components: Sequence[str] = ()) -> str:
        """A new, empty, incomplete run that append_to_run fills; returns its id."""
        components, map_components = list(components), list(map_components)
        for comp in components + map_components:
            check_component(comp)
        if default_component not in components:
            raise ValueError(f"default component {default_component!r} is not among {sorted(components)}")
        params_json, meta_json = to_json(params, "params"), to_json(metadata, "metadata")
        run_id, number = self._next_run_id()
        try:
            g = self._runs.create_group(run_id)
            for key, value in (("detector", detector), ("created", utc_now()), ("who", self._h.user),
                               ("default_component", default_component),
                               ("components", to_json(components, "components")),
                               ("map_components", to_json(map_components, "map components")),
                               ("complete", "no")):
                set_text_attr(g, key, value)
            g.attrs["n_scored"] = 0
            write_text_dataset(g, "params_json", params_json)
            write_text_dataset(g, "metadata_json", meta_json)
            g.create_dataset("image_ids", shape=(0,), maxshape=(None,), chunks=(4096,), dtype=np.int64)
            sg = g.create_group("scores")
            for comp in components:
                sg.create_dataset(comp, shape=(0,), maxshape=(None,), chunks=(4096,), dtype=np.float64)
            mg = g.create_group("maps")
            for comp in map_components:
                mg.create_group(comp)
            create_table(g, "thresholds", self._h.text)
            self._runs.attrs["next_run"] = number + 1
            self._h.commit()
        except (OSError, ValueError) as exc:
            raise StoreError(f"{self._h.path}: could not start run ({exc})") from exc
        return run_id

    def append_to_run(self, run_id: str, image_paths: Sequence[str | Path], scores: dict[str, np.ndarray],
                      maps: dict[str, list[np.ndarray | None]] | None = None) -> int:
        """Add one chunk of scored images to a growing run; on disk (flushed, counted, fsync'ed) when it
        returns. Returns the run's new image count. An image the run already scored is refused."""
        g = self.group(run_id)
        if get_text_attr(g, "complete", "yes") == "yes":
            raise StoreError(f"{self._h.path}: run {run_id} is complete; start a new run to score more")
        n0 = int(g.attrs["n_scored"])
        ids = np.array([self._images.index_of(p) for p in image_paths], dtype=np.int64)
        k = len(ids)
        done = set(g["image_ids"][:n0].tolist())
        if len(set(ids.tolist())) != k or done & set(ids.tolist()):
            raise ValueError(f"run {run_id}: a chunk lists an image twice or one the run already scored")
        comps = json.loads(get_text_attr(g, "components"))
        if set(scores) != set(comps):
            raise ValueError(f"run {run_id}: scores for {sorted(scores)}, the run has {sorted(comps)}")
        arrays = {c: np.asarray(v, dtype=np.float64).reshape(-1) for c, v in scores.items()}
        if any(a.shape[0] != k for a in arrays.values()):
            raise ValueError(f"run {run_id}: every component needs {k} scores")
        map_comps = json.loads(get_text_attr(g, "map_components"))
        maps = maps or {}
        try:
            for name, values in (("image_ids", ids), *((f"scores/{c}", a) for c, a in arrays.items())):
                ds = g[name]
                ds.resize((n0 + k,))
                ds[n0:] = values
            for comp in map_comps:
                items = maps.get(comp) or [None] * k
                if len(items) != k:
                    raise ValueError(f"maps[{comp!r}] has {len(items)} maps for {k} images")
                append_maps(g["maps"][comp], n0, [None if m is None else np.asarray(m, np.float32) for m in items])
            self._h.file.flush()  # the rows are in the file before the count that makes them part of the run
            g.attrs["n_scored"] = n0 + k
            self._h.commit()
        except (OSError, ValueError) as exc:
            raise StoreError(f"{self._h.path}: could not save scores of run {run_id} ({exc})") from exc
        self._run_rows.pop(run_id, None)
        return n0 + k

    def finish_run(self, run_id: str, metadata: dict | None = None) -> None:
        """Mark a growing run complete, optionally replacing its metadata (e.g. colour ranges over all maps)."""
        g = self.group(run_id)
        try:
            if metadata is not None:
                meta_json = to_json(metadata, "metadata")
                del g["metadata_json"]
                write_text_dataset(g, "metadata_json", meta_json)
            set_text_attr(g, "complete", "yes")
            self._h.commit()
        except (OSError, ValueError) as exc:
            raise StoreError(f"{self._h.path}: could not finish run {run_id} ({exc})") from exc

    def _n_scored(self, g: h5py.Group) -> int:
        """Committed images of a run: a growing run's count, or every row of a run written whole."""
        return int(g.attrs["n_scored"]) if "n_scored" in g.attrs else int(g["image_ids"].shape[0])

    def _next_run_id(self) -> tuple[str, int]:
        number = max([int(self._runs.attrs.get("next_run", 1))]
                     + [int(k.rsplit("-", 1)[1]) + 1 for k in self._runs if k.rsplit("-", 1)[-1].isdigit()])
        return f"run-{number:04d}", number

    def group(self, run_id: str) -> h5py.Group:
        if not isinstance(run_id, str) or run_id.startswith(".") or "/" in run_id or run_id not in self._runs:
            raise UnknownRunError(f"{self._h.path}: no run {run_id!r}")
        return self._runs[run_id]

    def list_runs(self) -> list[RunInfo]:
        """Runs in creation order."""
        names = sorted((k for k in self._runs if not k.startswith(".")), key=lambda k: int(k.rsplit("-", 1)[1]))
        return [self.run_info(k) for k in names]

    def latest_run(self) -> str | None:
        runs = self.list_runs()
        return runs[-1].run_id if runs else None

    def run_info(self, run_id: str) -> RunInfo:
        g = self.group(run_id)
        a = {k: get_text_attr(g, k) for k in ("detector", "created", "who", "default_component", "components",
                                               "map_components")}
        return RunInfo(run_id, a["detector"], json.loads(read_text_dataset(g, "params_json")),
                       json.loads(read_text_dataset(g, "metadata_json")), a["created"], a["who"],
                       a["default_component"], tuple(json.loads(a["components"])),
                       tuple(json.loads(a["map_components"])), self._n_scored(g),
                       get_text_attr(g, "complete", "yes") == "yes")

    def run_image_ids(self, run_id: str) -> np.ndarray:
        g = self.group(run_id)
        return g["image_ids"][:self._n_scored(g)]

    def run_scores(self, run_id: str) -> dict[str, np.ndarray]:
        """Every component's scores, aligned with run_image_ids(run_id)."""
        g = self.group(run_id)
        n = self._n_scored(g)
        return {comp: g["scores"][comp][:n] for comp in g["scores"]}

    def run_rows_since(self, run_id: str, start: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """The rows a growing run committed at or after row `start`: their image ids and every component's
        scores. A window following a run reads only what landed since it last looked."""
        g = self.group(run_id)
        n = self._n_scored(g)
        start = min(max(0, int(start)), n)
        return g["image_ids"][start:n], {comp: g["scores"][comp][start:n] for comp in g["scores"]}

    def scores(self, run_id: str, component: str | None = None) -> np.ndarray:
        """One component (default: the run's default) aligned to image ids: index = image id, NaN for
        images the run did not score."""
        g = self.group(run_id)
        comp = component or get_text_attr(g, "default_component")
        if comp not in g["scores"]:
            raise StoreError(f"{self._h.path}: run {run_id} has no score component {comp!r}")
        n = self._n_scored(g)
        out = np.full(len(self._images.paths), np.nan)
        out[g["image_ids"][:n]] = g["scores"][comp][:n]
        return out

    def maps(self, run_id: str, image: int | str | Path, component: str | None = None) -> dict[str, np.ndarray]:
        """Maps of one image in a run as float32, {component: 2-D array}; {} if the run stored none."""
        g = self.group(run_id)
        i = self._images.index_of(image)
        if run_id not in self._run_rows:  # committed rows never change: index them once (append drops it)
            self._run_rows[run_id] = {int(v): k for k, v in enumerate(g["image_ids"][:self._n_scored(g)])}
        k = self._run_rows[run_id].get(i)
        if k is None:
            raise StoreError(f"{self._h.path}: run {run_id} did not score image {self._images.paths[i]}")
        comps = [component] if component is not None else list(g["maps"])
        out = {}
        for comp in comps:
            if comp not in g["maps"]:
                raise StoreError(f"{self._h.path}: run {run_id} has no maps for component {comp!r}")
            out[comp] = read_map(g["maps"][comp], k)
        return out

    # ------------------------------------------------------------------ thresholds
    def set_threshold(self, run_id: str, t1: float, t2: float, method: str = "manual") -> ThresholdRecord:
        """Record the thresholds of a run; the latest record is current, older ones stay as history."""
        g = self.group(run_id)
        t1, t2 = float(t1), float(t2)
        if not (np.isfinite(t1) and np.isfinite(t2)) or t1 > t2:
            raise ValueError(f"thresholds need finite T1 <= T2, got T1={t1}, T2={t2}")
        rec = ThresholdRecord(run_id, t1, t2, method or "manual", self._h.user, utc_now())
        table = self._h.table("thresholds", g)
        n = table.n_rows
        try:
            table.write(n, {"t1": [t1], "t2": [t2], "method": [rec.method], "who": [rec.who],
                            "time": [rec.time.encode()]})
            self._h.commit([(table, n + 1)])
        except (OSError, ValueError) as exc:
            self._h.text.rollback()
            raise StoreError(f"{self._h.path}: could not save threshold ({exc})") from exc
        return rec

    def threshold_history(self, run_id: str) -> list[ThresholdRecord]:
        t = self._h.table("thresholds", self.group(run_id))
        c = t.read_all()
        return [ThresholdRecord(run_id, float(c["t1"][k]), float(c["t2"][k]), c["method"][k], c["who"][k],
                                c["time"][k]) for k in range(len(c["t1"]))]

    def threshold(self, run_id: str) -> ThresholdRecord | None:
        history = self.threshold_history(run_id)
        return history[-1] if history else None
