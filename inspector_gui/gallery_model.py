"""The gallery's item model: one row per image, columns of plain numpy arrays and lists.

Why arrays: a review project holds 10k+ images, and the things the gallery does in bulk (new scores from a run,
a new review band, sorting, filtering) then cost one numpy operation instead of 10k Python objects.

Two orders, kept apart on purpose:
- *item order* is the order of `set_items`; `set_scores` and `set_labels` take arrays in that order, and
  `ItemRole` gives a row's item index (the caller's own index into its arrays).
- *row order* is the order rows are presented in, i.e. the current sort. The model sorts itself (numpy argsort,
  one layoutChanged) because QSortFilterProxyModel's own sort calls a Python `lessThan` n log n times:
  measured 1.1 s for 10k rows on the 2-core test machine, against a few milliseconds here. `row_of(path)` and
  `path(row)` translate; rows change when the sort or the scores change, paths and items never do.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from enum import IntEnum
from pathlib import Path

import numpy as np
from PySide6.QtCore import (
    QAbstractListModel,
    QByteArray,
    QCoreApplication,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    Qt,
    QTimer,
    Signal,
    Slot,
)

from core.vocabulary import LABELS, canonical_label
from inspector_gui.gallery_thumbs import THUMB_SIZE, ThumbnailLoader, placeholder_image

SORT_KEYS = ("score", "name", "review")  # review: core.session.label_loop.review_keys, ascending
_LABEL_CODE = {name: code for code, name in enumerate(LABELS)}


class GalleryRole(IntEnum):
    """Custom data roles of GalleryModel (and of the proxy, which forwards them)."""

    PathRole = Qt.ItemDataRole.UserRole.value + 1  # str, the image file
    ScoreRole = Qt.ItemDataRole.UserRole.value + 2  # float, NaN when unscored
    LabelRole = Qt.ItemDataRole.UserRole.value + 3  # str, one of core.vocabulary.LABELS
    SplitRole = Qt.ItemDataRole.UserRole.value + 4  # str, e.g. train / test / unsorted
    DefectTypeRole = Qt.ItemDataRole.UserRole.value + 5  # str, "" when none
    ReviewRole = Qt.ItemDataRole.UserRole.value + 6  # bool, t1 <= score < t2 of the review band
    ErrorRole = Qt.ItemDataRole.UserRole.value + 7  # str, why the image cannot be shown ("" if it can)
    ThumbnailStateRole = Qt.ItemDataRole.UserRole.value + 8  # str: none / pending / ready / broken
    ItemRole = Qt.ItemDataRole.UserRole.value + 9  # int, index in the set_items order


_DISPLAY = Qt.ItemDataRole.DisplayRole.value
_DECORATION = Qt.ItemDataRole.DecorationRole.value
_TOOLTIP = Qt.ItemDataRole.ToolTipRole.value
_THUMB_ROLES = [_DECORATION, _TOOLTIP, GalleryRole.ErrorRole.value, GalleryRole.ThumbnailStateRole.value]


def format_score(score: float) -> str:
    """Compact score text for a tile: 4 significant digits, exponent without padding, a dash when unscored."""
    if score is None or math.isnan(score):
        return "—"
    text = f"{score:.4g}"
    if "e" in text:
        mantissa, exp = text.split("e")
        text = f"{mantissa}e{int(exp)}"
    return text


def normalise_label(label: str | None) -> str:
    """Map a label (or a folder scan's "unknown") onto the store vocabulary; ValueError for anything else."""
    return canonical_label(label)


def _label_codes(labels: Sequence[str | None]) -> np.ndarray:
    codes = {x: _LABEL_CODE[normalise_label(x)] for x in set(labels)}  # few distinct values: normalise once
    return np.array([codes[x] for x in labels], dtype=np.int8)


class GalleryModel(QAbstractListModel):
    """One row per image. DisplayRole is the file name; DecorationRole the thumbnail (asking schedules it).

    Signals: scoresChanged(), labelChanged(path, label, defect_type), labelsReset(),
    reviewBandChanged(t1, t2) (NaN, NaN when cleared), sortChanged(key, descending).
    """

    scoresChanged = Signal()
    labelChanged = Signal(str, str, str)
    labelsReset = Signal()
    reviewBandChanged = Signal(float, float)
    sortChanged = Signal(str, bool)

    def __init__(self, parent: QObject | None = None, thumb_size: int = THUMB_SIZE, cache_size: int = 2000,
                 threads: int | None = None):
        super().__init__(parent)
        self.loader = ThumbnailLoader(thumb_size, cache_size, threads, parent=self)
        self.loader.thumbnailReady.connect(self._on_thumbnail)
        self._flush_timer = QTimer(self)
        self._flush_timer.setSingleShot(True)
        self._flush_timer.setInterval(25)  # coalesce arrivals: one repaint per ~frame, not one per image
        self._flush_timer.timeout.connect(self._flush_thumbnails)
        self._dirty: set[int] = set()
        self._sort_key, self._sort_desc = "score", True
        self._band: tuple[float, float] | None = None
        self.revision = 0  # bumped whenever anything a filter or sort reads changes (the proxy caches on it)
        self._set_arrays([], [], [], [])
        app = QCoreApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self.shutdown)

    # -- Qt model interface ---------------------------------------------------------------------------------
    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._paths)

    def flags(self, index: QModelIndex | QPersistentModelIndex) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemNeverHasChildren

    def roleNames(self) -> dict[int, QByteArray]:
        names = super().roleNames()
        for role in GalleryRole:
            names[role.value] = QByteArray(role.name.removesuffix("Role").lower().encode())
        return names

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = _DISPLAY) -> object:
        row = index.row()
        if not index.isValid() or row >= len(self._order_list):
            return None
        item = self._order_list[row]
        role = int(role)
        if role == _DISPLAY:
            return self._names[item]
        if role == _DECORATION:
            return self._thumbnail(item)
        if role == GalleryRole.PathRole:
            return self._paths[item]
        if role == GalleryRole.ScoreRole:
            return float(self._scores[item])
        if role == GalleryRole.LabelRole:
            return LABELS[self._label_codes[item]]
        if role == GalleryRole.SplitRole:
            return self._split_vocab[self._split_codes[item]]
        if role == GalleryRole.DefectTypeRole:
            return self._defect_vocab[self._defect_codes[item]]
        if role == GalleryRole.ReviewRole:
            return bool(self._review[item])
        if role == GalleryRole.ErrorRole:
            return self.loader.error(self._paths[item])
        if role == GalleryRole.ThumbnailStateRole:
            return self.thumbnail_state(self._paths[item])
        if role == GalleryRole.ItemRole:
            return item
        if role == _TOOLTIP:
            return self._tooltip(item)
        return None

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        """Qt's sort entry point: sorts by score in the given order (see sort_by for the name key)."""
        self.sort_by("score", descending=order == Qt.SortOrder.DescendingOrder)

    # -- public API -----------------------------------------------------------------------------------------
    def set_items(self, paths: Sequence[str | Path], splits: Sequence[str] | None = None,
                  labels: Sequence[str | None] | None = None,
                  defect_types: Sequence[str | None] | None = None) -> None:
        """Replace all rows. Paths must be unique; scores start unscored (NaN). Thumbnails already cached are
        kept (by path), pending decodes of the previous set are dropped."""
        paths = [str(p) for p in paths]
        n = len(paths)
        splits = ["unsorted"] * n if splits is None else [s or "unsorted" for s in splits]
        labels = ["unlabeled"] * n if labels is None else list(labels)
        defect_types = [""] * n if defect_types is None else [d or "" for d in defect_types]
        if not (len(splits) == len(labels) == len(defect_types) == n):
            raise ValueError(f"set_items: {n} paths but {len(splits)} splits, {len(labels)} labels, "
                             f"{len(defect_types)} defect types")
        self.loader.cancel_all()
        self.beginResetModel()
        self._set_arrays(paths, splits, labels, defect_types)
        self._apply_sort(emit_layout=False)
        self.endResetModel()

    def set_scores(self, scores: np.ndarray | Sequence[float]) -> None:
        """Scores in item order (NaN = unscored). One dataChanged for all rows, then a re-sort if sorted by score."""
        values = np.asarray(scores, dtype=np.float64).reshape(-1)
        if values.shape[0] != len(self._paths):
            raise ValueError(f"set_scores: {values.shape[0]} scores for {len(self._paths)} images")
        self._scores = values.copy()
        self._update_review()
        self.revision += 1
        if self._paths:
            roles = [GalleryRole.ScoreRole.value, GalleryRole.ReviewRole.value, _TOOLTIP]
            self.dataChanged.emit(self.index(0, 0), self.index(len(self._paths) - 1, 0), roles)
        self.scoresChanged.emit()
        if self._sort_key == "score":
            self._apply_sort(emit_layout=True)

    def set_review_keys(self, keys: np.ndarray | Sequence[float] | None) -> None:
        """The "review next" sort key per image, in item order (ascending = review first, NaN last; see
        core.session.label_loop). Re-sorts when the gallery is sorted by it. None clears it."""
        n = len(self._paths)
        values = np.full(n, np.nan) if keys is None else np.asarray(keys, dtype=np.float64).reshape(-1)
        if values.shape[0] != n:
            raise ValueError(f"set_review_keys: {values.shape[0]} keys for {n} images")
        self._review_keys = values.copy()
        self.revision += 1
        if self._sort_key == "review":
            self._apply_sort(emit_layout=True)

    def review_keys(self) -> np.ndarray:
        """The "review next" keys in item order (a copy)."""
        return self._review_keys.copy()

    def set_label(self, row: int, label: str, defect_type: str = "") -> None:
        """Label the image in `row` (current row order). Emits dataChanged for that row and labelChanged."""
        if not 0 <= row < len(self._paths):
            raise IndexError(f"set_label: row {row} out of range (0..{len(self._paths) - 1})")
        name = normalise_label(label)
        item = self._order_list[row]
        self._label_codes[item] = _LABEL_CODE[name]
        self._defect_codes[item] = self._defect_code(defect_type or "")
        self.revision += 1
        idx = self.index(row, 0)
        self.dataChanged.emit(idx, idx, [GalleryRole.LabelRole.value, GalleryRole.DefectTypeRole.value, _TOOLTIP])
        self.labelChanged.emit(self._paths[item], name, defect_type or "")

    def set_split(self, paths: Sequence[str | Path], split: str) -> None:
        """Set the split tag of these images (e.g. "train" once they are marked for training)."""
        code = self._code(split, self._split_vocab, self._split_index)
        rows = [self.row_of(p) for p in paths]
        for row in (r for r in rows if r >= 0):
            self._split_codes[self._order_list[row]] = code
            idx = self.index(row, 0)
            self.dataChanged.emit(idx, idx, [GalleryRole.SplitRole.value, _TOOLTIP])
        self.revision += 1

    def set_labels(self, labels: Sequence[str | None], defect_types: Sequence[str | None] | None = None) -> None:
        """All labels at once, in item order (e.g. after opening a store). One dataChanged for all rows."""
        if len(labels) != len(self._paths) or (defect_types is not None and len(defect_types) != len(labels)):
            raise ValueError(f"set_labels: {len(labels)} labels for {len(self._paths)} images")
        self._label_codes = _label_codes(labels)
        if defect_types is not None:
            self._defect_codes = np.array([self._defect_code(d or "") for d in defect_types], dtype=np.int32)
        self.revision += 1
        if self._paths:
            roles = [GalleryRole.LabelRole.value, GalleryRole.DefectTypeRole.value, _TOOLTIP]
            self.dataChanged.emit(self.index(0, 0), self.index(len(self._paths) - 1, 0), roles)
        self.labelsReset.emit()

    def set_review_band(self, t1: float, t2: float) -> None:
        """Mark the rows with t1 <= score < t2 (the band an engineer reviews by hand). Unscored rows never are."""
        if not t1 <= t2:
            raise ValueError(f"set_review_band: t1 ({t1}) must not exceed t2 ({t2})")
        self._band = (float(t1), float(t2))
        self._review_changed()

    def clear_review_band(self) -> None:
        self._band = None
        self._review_changed()

    def review_band(self) -> tuple[float, float] | None:
        return self._band

    def sort_by(self, key: str, descending: bool = True) -> None:
        """Order rows by "score" (NaN last in both directions; ties by name), by file "name", or "review" (the
        keys of set_review_keys, ascending, NaN last)."""
        if key not in SORT_KEYS:
            raise ValueError(f"sort key must be one of {', '.join(SORT_KEYS)}, not {key!r}")
        self._sort_key, self._sort_desc = key, bool(descending)
        self._apply_sort(emit_layout=True)
        self.sortChanged.emit(key, bool(descending))

    def sort_order(self) -> tuple[str, bool]:
        return self._sort_key, self._sort_desc

    def row_of(self, path: str | Path) -> int:
        """Current row of `path`, or -1 when the gallery does not hold it."""
        item = self._item_of_path.get(str(path))
        return -1 if item is None else int(self._row_of_item[item])

    def path(self, row: int) -> str:
        return self._paths[self._order_list[row]]

    def paths(self) -> list[str]:
        """Paths in item (set_items) order."""
        return list(self._paths)

    def scores(self) -> np.ndarray:
        """Scores in item order (a copy)."""
        return self._scores.copy()

    def label(self, row: int) -> str:
        return LABELS[self._label_codes[self._order_list[row]]]

    def splits(self) -> list[str]:
        """Split names present, in first-seen order."""
        present = set(np.unique(self._split_codes).tolist())
        return [name for code, name in enumerate(self._split_vocab) if code in present]

    def defect_types(self) -> list[str]:
        """Defect types present (without ""), sorted."""
        present = set(np.unique(self._defect_codes).tolist())
        return sorted(name for code, name in enumerate(self._defect_vocab) if name and code in present)

    def row_arrays(self) -> dict[str, np.ndarray]:
        """Filter inputs in row order, for the proxy: label, split and defect codes, review flags, scores."""
        order = self._order
        return {"label": self._label_codes[order], "split": self._split_codes[order],
                "defect": self._defect_codes[order], "review": self._review[order], "score": self._scores[order]}

    def split_code(self, split: str) -> int:
        """Code of a split name in row_arrays()["split"], -1 if no image has it."""
        return self._split_index.get(split, -1)

    def defect_code(self, defect_type: str) -> int:
        """Code of a defect type in row_arrays()["defect"] ("" = none is code 0), -1 if unknown."""
        return self._defect_index.get(defect_type, -1)

    def thumbnail_state(self, path: str) -> str:
        if self.loader.get(path) is not None:
            return "ready"
        if self.loader.error(path):
            return "broken"
        return "pending" if self.loader.is_pending(path) else "none"

    def retain_thumbnails(self, paths: Sequence[str]) -> int:
        """Drop pending thumbnail decodes except for `paths` (the view calls this after scrolling)."""
        return self.loader.retain(paths)

    @Slot()
    def shutdown(self) -> None:
        """Stop thumbnail workers; the application calls this on quit (connected to aboutToQuit)."""
        self._flush_timer.stop()
        self.loader.shutdown()

    # -- internals ------------------------------------------------------------------------------------------
    def _set_arrays(self, paths: list[str], splits: Sequence[str], labels: Sequence[str | None],
                    defect_types: Sequence[str]) -> None:
        item_of_path = {p: i for i, p in enumerate(paths)}
        if len(item_of_path) != len(paths):  # rows are found by path (thumbnails, labels): it must be unique
            dup = next(p for i, p in enumerate(paths) if item_of_path[p] != i)
            raise ValueError(f"set_items: {dup} is listed twice")
        n = len(paths)
        self._paths = paths
        self._item_of_path = item_of_path
        self._names = [os.path.basename(p) for p in paths]  # pathlib is 10x slower: 0.3 s for 10k paths
        self._split_vocab: list[str] = []
        self._split_index: dict[str, int] = {}
        self._split_codes = np.array([self._code(s, self._split_vocab, self._split_index) for s in splits],
                                     dtype=np.int16).reshape(n)
        self._defect_vocab = [""]
        self._defect_index = {"": 0}
        self._defect_codes = np.array([self._defect_code(d) for d in defect_types], dtype=np.int32).reshape(n)
        self._label_codes = _label_codes(labels).reshape(n)
        self._scores = np.full(n, np.nan)
        self._review_keys = np.full(n, np.nan)
        self._review = np.zeros(n, dtype=bool)
        folded = [name.casefold() for name in self._names]
        name_order = sorted(range(n), key=lambda i: (folded[i], paths[i]))
        self._name_rank = np.empty(n, dtype=np.int64)
        self._name_rank[name_order] = np.arange(n)
        self._order = np.arange(n)
        self._order_list = self._order.tolist()
        self._row_of_item = np.arange(n)
        self._dirty.clear()
        self._update_review()
        self.revision += 1

    @staticmethod
    def _code(name: str, vocab: list[str], index: dict[str, int]) -> int:
        code = index.get(name)
        if code is None:
            code = index[name] = len(vocab)
            vocab.append(name)
        return code

    def _defect_code(self, defect_type: str) -> int:
        return self._code(defect_type, self._defect_vocab, self._defect_index)

    def _update_review(self) -> None:
        if self._band is None:
            self._review = np.zeros(len(self._paths), dtype=bool)
        else:
            t1, t2 = self._band
            with np.errstate(invalid="ignore"):
                self._review = (self._scores >= t1) & (self._scores < t2)

    def _review_changed(self) -> None:
        self._update_review()
        self.revision += 1
        if self._paths:
            self.dataChanged.emit(self.index(0, 0), self.index(len(self._paths) - 1, 0),
                                  [GalleryRole.ReviewRole.value, _TOOLTIP])
        t1, t2 = self._band if self._band is not None else (math.nan, math.nan)
        self.reviewBandChanged.emit(t1, t2)

    def _apply_sort(self, emit_layout: bool) -> None:
        n = len(self._paths)
        if self._sort_key == "score":
            key = -self._scores if self._sort_desc else self._scores
            order = np.lexsort((self._name_rank, key))  # last key is primary; NaN sorts last
        elif self._sort_key == "review":  # least sure first, whatever `descending` says
            order = np.lexsort((self._name_rank, self._review_keys))
        else:
            order = np.argsort(-self._name_rank if self._sort_desc else self._name_rank, kind="stable")
        if emit_layout:
            self.layoutAboutToBeChanged.emit()
            persistent = self.persistentIndexList()
            held = [self._order_list[i.row()] if i.isValid() else -1 for i in persistent]
        self._order = order.astype(np.intp)
        self._order_list = self._order.tolist()
        self._row_of_item = np.empty(n, dtype=np.intp)
        self._row_of_item[self._order] = np.arange(n)
        self.revision += 1
        if emit_layout:
            new = [self.index(int(self._row_of_item[it]), 0) if it >= 0 else QModelIndex() for it in held]
            self.changePersistentIndexList(persistent, new)
            self.layoutChanged.emit()

    def _thumbnail(self, item: int) -> object:
        path = self._paths[item]
        image = self.loader.get(path)
        if image is not None:
            return image
        if self.loader.error(path):
            return placeholder_image("broken", self.loader.size)
        self.loader.request(path)
        return placeholder_image("loading", self.loader.size)

    def _tooltip(self, item: int) -> str:
        path = self._paths[item]
        lines = []
        error = self.loader.error(path)
        if error:  # the path is the next line: the reason alone ("header says 60000 x 60000 = ...")
            lines.append(f"Cannot show this image: {error.removeprefix(path + ': ')}")
        label = LABELS[self._label_codes[item]]
        defect = self._defect_vocab[self._defect_codes[item]]
        lines += [path, f"score {format_score(float(self._scores[item]))}",
                  f"label {label}" + (f" ({defect})" if defect else ""),
                  f"split {self._split_vocab[self._split_codes[item]]}"]
        if self._review[item]:
            lines.append("in the review band")
        return "\n".join(lines)

    @Slot(str)
    def _on_thumbnail(self, path: str) -> None:
        item = self._item_of_path.get(path)
        if item is None:
            return
        self._dirty.add(item)
        if not self._flush_timer.isActive():
            self._flush_timer.start()

    @Slot()
    def _flush_thumbnails(self) -> None:
        if not self._dirty or not self._paths:
            self._dirty.clear()
            return
        rows = self._row_of_item[np.fromiter(self._dirty, dtype=np.intp, count=len(self._dirty))]
        self._dirty.clear()
        self.dataChanged.emit(self.index(int(rows.min()), 0), self.index(int(rows.max()), 0), _THUMB_ROLES)
