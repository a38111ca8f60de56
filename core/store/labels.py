"""Review and model labels of the store: setting them, the audit log, replay, and the consistency check
of the label tables against the log on open.

The audit log is the truth; the `labels` / `model_labels` tables and the in-memory caches are its
materialised current state. Every method expects the caller (core.store.store.Store) to hold the handle's
lock; the durability rules are in docs/store-format.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from core.store.errors import StoreCorruptError, StoreError
from core.store.handle import StoreHandle
from core.store.hdf5 import Table
from core.store.images import Images
from core.store.records import AuditEntry, LabelRecord, ReplayState
from core.store.runs import Runs
from core.store.stamps import utc_now
from core.vocabulary import LABEL_SOURCES, LABELS, SOURCES


class Labels:
    """Labels, history and replay. Gets the images (to resolve ids and know how many there are) and the
    runs (a model verdict names the run behind it) it needs explicitly."""

    def __init__(self, handle: StoreHandle, images: Images, runs: Runs) -> None:
        self._h = handle
        self._images = images
        self._runs = runs
        self._labels: Table = handle.table("labels")
        self._model: Table = handle.table("model_labels")
        self._audit: Table = handle.table("audit")
        self.repaired_images: list[int] = []
        self._reconcile()

    # ------------------------------------------------------------------ consistency on open
    def _reconcile(self) -> None:
        """Current labels come from replaying the audit log (the truth); the label tables are checked
        against it and repaired when a writer was killed after writing a table row but before counting
        its log entry (or inside add_images, before the tables were extended)."""
        n = len(self._images.paths)
        state, seqs = self._replay_with_seq(None)
        self._label_cache = [state.labels.get(i, LabelRecord(i)) for i in range(n)]
        self._model_cache = [state.model_labels.get(i, LabelRecord(i)) for i in range(n)]
        self._seq = {"labels": [seqs[0].get(i, -1) for i in range(n)],
                     "model_labels": [seqs[1].get(i, -1) for i in range(n)]}
        repaired: set[int] = set()
        bad_tables = []
        for name, table, cache in (("labels", self._labels, self._label_cache),
                                   ("model_labels", self._model, self._model_cache)):
            want = self._label_rows(name, cache, range(n))
            try:
                have = table.read_all(0, n)
            except OSError:  # unreadable chunk: rebuild the whole table from the log
                have = {k: np.zeros(0) for k in want}
            m = len(have["seq"])
            diff = [i for i in range(m) if (have["label"][i], have["source"][i], have["seq"][i])
                    != (want["label"][i], want["source"][i], want["seq"][i])]
            repaired.update(diff)
            if diff or m < n:
                bad_tables.append((table, cache, name))
        self.repaired_images = sorted(repaired)
        if self._h.readonly or not bad_tables:
            return
        for table, cache, name in bad_tables:
            table.write(0, self._label_rows(name, cache, range(n)))
        self._h.commit([(table, n) for table, _, _ in bad_tables])

    def _label_rows(self, name: str, cache: Sequence[LabelRecord] | dict[int, LabelRecord],
                    ids: Iterable[int]) -> dict[str, list[int]]:
        ids = list(ids)
        return {"label": [LABELS.index(cache[i].label) for i in ids],
                "source": [SOURCES.index(cache[i].source) for i in ids],
                "seq": [self._seq[name][i] for i in ids]}

    # ------------------------------------------------------------------ new images
    def stage_new_images(self, start: int, k: int) -> list[tuple[Table, int]]:
        """Unlabeled rows for images start..start+k-1 on both tracks (uncounted); returns the row counts
        the images' commit must publish, so images and their label rows appear together."""
        for table in (self._labels, self._model):
            table.write(start, {"label": [0] * k, "source": [0] * k, "seq": [-1] * k})
        return [(table, start + k) for table in (self._labels, self._model)]

    def apply_new_images(self, ids: Iterable[int]) -> None:
        """After that commit: the caches gain an unlabeled entry per new image."""
        for i in ids:
            self._label_cache.append(LabelRecord(i))
            self._model_cache.append(LabelRecord(i))
            self._seq["labels"].append(-1)
            self._seq["model_labels"].append(-1)

    # ------------------------------------------------------------------ setting and reading
    def set_labels(self, items: Sequence[tuple[int | str | Path, str, str | None, str | None]], *,
                   source: str = "human", run_id: str | None = None) -> list[LabelRecord]:
        """Many labels with one commit: (image, label, defect_type, note) each (see Store.set_label)."""
        if source not in LABEL_SOURCES:
            raise ValueError(f"source must be one of {LABEL_SOURCES}, not {source!r}")
        if run_id is not None:
            self._runs.group(run_id)
        cache = self._model_cache if source == "model" else self._label_cache
        now, staged = utc_now(), {}
        out: list[LabelRecord] = []
        audit_rows: list[tuple[LabelRecord, LabelRecord]] = []
        for image, label, defect_type, note in items:
            i = self._images.index_of(image)
            old = staged.get(i, cache[i])
            if label not in LABELS:
                raise ValueError(f"label must be one of {LABELS}, not {label!r}")
            defect = (defect_type or "").strip()
            if "\x00" in defect or (note is not None and "\x00" in note):
                raise ValueError("defect type and note cannot contain NUL characters (HDF5 strings end there)")
            if defect and label not in ("defect", "suspicious"):
                raise ValueError(f"a {label!r} image has no defect type (got {defect_type!r})")
            new_note = old.note if note is None else note
            # Unchanged, unless a person confirms an imported or model label: that confirmation is itself worth
            # keeping (source becomes "human", with an audit row), e.g. an engineer checking imported ground truth.
            if (old.label, old.defect_type, old.note) == (label, defect, new_note) and (
                    old.source == source or source != "human"):
                out.append(old)
                continue
            new = LabelRecord(i, label, defect, new_note, source, self._h.user, now, run_id or "")
            staged[i] = new
            out.append(new)
            audit_rows.append((old, new))
        self._write_changes(source == "model", staged, audit_rows)
        return out

    def _write_changes(self, model: bool, staged: dict[int, LabelRecord],
                       audit_rows: list[tuple[LabelRecord, LabelRecord]]) -> None:
        """Log rows and table rows, flush, then count the log rows, flush + fsync (see Table)."""
        if not staged:
            return
        name = "model_labels" if model else "labels"
        table = self._model if model else self._labels
        cache = self._model_cache if model else self._label_cache
        start = self._audit.n_rows
        new_seq = {n.image_id: start + k for k, (_, n) in enumerate(audit_rows)}
        old_seq = {i: self._seq[name][i] for i in staged}
        try:
            self._audit.write(start, {
                "time": [n.time.encode() for _, n in audit_rows], "who": [n.who for _, n in audit_rows],
                "source": [SOURCES.index(n.source) for _, n in audit_rows],
                "image": [n.image_id for _, n in audit_rows],
                "old_label": [LABELS.index(o.label) for o, _ in audit_rows],
                "new_label": [LABELS.index(n.label) for _, n in audit_rows],
                "old_defect_type": [o.defect_type for o, _ in audit_rows],
                "new_defect_type": [n.defect_type for _, n in audit_rows],
                "old_note": [o.note for o, _ in audit_rows], "new_note": [n.note for _, n in audit_rows],
                "run": [n.run for _, n in audit_rows]})
            for i, seq in new_seq.items():
                self._seq[name][i] = seq
            merged = {i: staged[i] for i in staged}
            if len(staged) > 64:  # whole table: thousands of single-row writes are slow
                table.write(0, self._label_rows(name, [merged.get(i, c) for i, c in enumerate(cache)],
                                                range(len(cache))))
            else:
                for i in sorted(staged):
                    table.write(i, self._label_rows(name, {i: staged[i]}, [i]))
            self._h.commit([(self._audit, start + len(audit_rows))])
        except (OSError, ValueError) as exc:
            self._h.text.rollback()
            for i, seq in old_seq.items():
                self._seq[name][i] = seq
            for i in staged:  # best effort: put the table rows back to what the log says
                try:
                    table.write(i, self._label_rows(name, cache, [i]))
                except (OSError, ValueError):
                    break
            raise StoreError(f"{self._h.path}: could not save labels ({exc})") from exc
        for i, rec in staged.items():
            cache[i] = rec

    def label(self, image: int | str | Path) -> LabelRecord:
        """Current review label (human or import)."""
        return self._label_cache[self._images.index_of(image)]

    def labels(self) -> list[LabelRecord]:
        return list(self._label_cache)

    def model_label(self, image: int | str | Path) -> LabelRecord:
        """Latest model verdict, kept apart from the review label."""
        return self._model_cache[self._images.index_of(image)]

    def model_labels(self) -> list[LabelRecord]:
        return list(self._model_cache)

    def history(self, image: int | str | Path | None = None, *, source: str | None = None) -> list[AuditEntry]:
        """The audit log, oldest first, optionally for one image and/or one source."""
        entries = self._read_audit()
        if image is not None:
            i = self._images.index_of(image)
            entries = [e for e in entries if e.image_id == i]
        if source is not None:
            entries = [e for e in entries if e.source == source]
        return entries

    def replay(self, until: int | str | None = None) -> ReplayState:
        """Labels as they were after the first `until` log entries (int) or at UTC time `until` (ISO
        string, inclusive); None replays everything and equals the current labels."""
        return self._replay_with_seq(until)[0]

    def _read_audit(self) -> list[AuditEntry]:
        t = self._audit
        cols = t.read_all()
        try:
            return [AuditEntry(k, cols["time"][k], cols["who"][k], SOURCES[cols["source"][k]], int(cols["image"][k]),
                               LABELS[cols["old_label"][k]], LABELS[cols["new_label"][k]],
                               cols["old_defect_type"][k], cols["new_defect_type"][k], cols["old_note"][k],
                               cols["new_note"][k], cols["run"][k]) for k in range(len(cols["image"]))]
        except IndexError as exc:
            raise StoreCorruptError(f"{self._h.path}: audit log holds an unknown label or source code") from exc

    def _replay_with_seq(self, until: int | str | None) -> tuple[ReplayState, tuple[dict[int, int], dict[int, int]]]:
        entries = self._read_audit()
        if isinstance(until, int):
            entries = entries[:until]
        elif isinstance(until, str):
            entries = [e for e in entries if e.time <= until]
        review: dict[int, LabelRecord] = {}
        model: dict[int, LabelRecord] = {}
        review_seq: dict[int, int] = {}
        model_seq: dict[int, int] = {}
        for e in entries:
            if not 0 <= e.image_id < len(self._images.paths):
                raise StoreCorruptError(f"{self._h.path}: audit entry {e.seq} names image {e.image_id}, "
                                        f"which the store does not hold")
            track, seqs = (model, model_seq) if e.source == "model" else (review, review_seq)
            track[e.image_id] = LabelRecord(e.image_id, e.new_label, e.new_defect_type, e.new_note, e.source,
                                            e.who, e.time, e.run)
            seqs[e.image_id] = e.seq
        return ReplayState(review, model), (review_seq, model_seq)
