"""Gallery: a virtualized grid of image tiles sorted by anomaly score, with label badges and a filter bar.

Pieces (each importable from here):
- GalleryModel, GalleryRole (gallery_model.py): rows as numpy arrays; thumbnails on a thread pool.
- GalleryFilterProxy (gallery_proxy.py): label / split / defect type / review band filters; sort via the model.
- GalleryDelegate (gallery_delegate.py): how a tile is painted.
- GalleryView, GalleryWidget (this file): the list view and the filter bar.

The view lays out 10k tiles cheaply because every tile has the same size (setUniformItemSizes) and layout is
batched; only painted tiles ask for their thumbnail, so opening a large folder decodes one screen of images.
"""

from __future__ import annotations

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QPoint, QSize, Qt, QTimer, Signal, Slot
from PySide6.QtGui import QColor, QIcon, QPixmap, QResizeEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QLabel,
    QListView,
    QStyle,
    QStyleOptionViewItem,
    QVBoxLayout,
    QWidget,
)

from core.vocabulary import LABEL_COLOURS, LABELS
from inspector_gui.flow_layout import FlowLayout
from inspector_gui.gallery_delegate import REVIEW_COLOUR, GalleryDelegate
from inspector_gui.gallery_model import GalleryModel, GalleryRole, format_score
from inspector_gui.gallery_proxy import GalleryFilterProxy
from inspector_gui.gallery_thumbs import THUMB_SIZE, ThumbnailLoader, decode_thumbnail

__all__ = ["GalleryDelegate", "GalleryFilterProxy", "GalleryModel", "GalleryRole", "GalleryView", "GalleryWidget",
           "ThumbnailLoader", "decode_thumbnail", "format_score"]


class GalleryView(QListView):
    """Grid of tiles. Emits currentImageChanged(path) when the current image changes ("" when none).

    After scrolling settles, pending thumbnail decodes for tiles no longer on screen are dropped.
    """

    currentImageChanged = Signal(str)

    def __init__(self, parent: QWidget | None = None, thumb_size: int = THUMB_SIZE):
        super().__init__(parent)
        self.setViewMode(QListView.ViewMode.IconMode)
        self.setMovement(QListView.Movement.Static)
        self.setFlow(QListView.Flow.LeftToRight)
        self.setWrapping(True)
        self.setResizeMode(QListView.ResizeMode.Adjust)
        self.setUniformItemSizes(True)
        self.setLayoutMode(QListView.LayoutMode.Batched)
        self.setBatchSize(1000)
        self.setSpacing(4)
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.verticalScrollBar().setSingleStep(24)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setItemDelegate(GalleryDelegate(self, thumb_size))
        # Always on, so the viewport width (and with it the column count) cannot flip when the bar appears.
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOn)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self._last_path = ""
        self._retain_timer = QTimer(self)
        self._retain_timer.setSingleShot(True)
        self._retain_timer.setInterval(120)
        self._retain_timer.timeout.connect(self._retain_visible)
        self.verticalScrollBar().valueChanged.connect(self._on_scrolled)

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._fit_grid()

    def _fit_grid(self) -> None:
        """Share the spare width between the columns, so the grid fills the view instead of leaving a gap."""
        tile = self.itemDelegate().sizeHint(self._item_option(), QModelIndex())
        gap = 2 * self.spacing()
        width = self.viewport().width() - 1
        columns = max(1, width // (tile.width() + gap))
        grid = QSize(max(tile.width() + gap, width // columns), tile.height() + gap)
        if grid != self.gridSize():
            self.setGridSize(grid)

    def one_tile_width(self) -> int:
        """The narrowest width that shows one whole tile: tile, grid gaps, scroll bar and frame."""
        tile = self.itemDelegate().sizeHint(self._item_option(), QModelIndex())
        scrollbar = self.style().pixelMetric(QStyle.PixelMetric.PM_ScrollBarExtent, None, self)
        return tile.width() + 2 * self.spacing() + scrollbar + 2 * self.frameWidth() + 2

    def gallery_model(self) -> GalleryModel | None:
        model = self.model()
        if isinstance(model, GalleryFilterProxy):
            return model.gallery()
        return model if isinstance(model, GalleryModel) else None

    def current_path(self) -> str:
        index = self.currentIndex()
        return str(index.data(GalleryRole.PathRole.value) or "") if index.isValid() else ""

    def selected_paths(self) -> list[str]:
        role = GalleryRole.PathRole.value
        return [idx.data(role) for idx in sorted(self.selectedIndexes(), key=lambda i: i.row())]

    def select_path(self, path: str) -> bool:
        """Make `path` the current image and scroll to it; False when it is filtered out or unknown."""
        model = self.model()
        if isinstance(model, GalleryFilterProxy):
            row = model.row_of(path)
        elif isinstance(model, GalleryModel):
            row = model.row_of(path)
        else:
            row = -1
        if row < 0:
            return False
        index = model.index(row, 0)
        self.setCurrentIndex(index)
        self.scrollTo(index)
        return True

    def visible_paths(self) -> list[str]:
        """Paths of the tiles currently on screen (probed on a half-tile grid, so no tile is missed)."""
        model = self.model()
        if model is None or model.rowCount() == 0:
            return []
        size = self.itemDelegate().sizeHint(self._item_option(), model.index(0, 0))
        step_x, step_y = max(8, size.width() // 2), max(8, size.height() // 2)
        vp = self.viewport().rect()
        role = GalleryRole.PathRole.value
        seen: dict[int, str] = {}
        for y in range(vp.top() + 2, vp.bottom() + step_y, step_y):
            for x in range(vp.left() + 2, vp.right() + step_x, step_x):
                idx = self.indexAt(QPoint(min(x, vp.right()), min(y, vp.bottom())))
                if idx.isValid() and idx.row() not in seen:
                    seen[idx.row()] = idx.data(role)
        return [seen[r] for r in sorted(seen)]

    def _item_option(self) -> QStyleOptionViewItem:
        option = QStyleOptionViewItem()
        self.initViewItemOption(option)
        return option

    def currentChanged(self, current: QModelIndex | QPersistentModelIndex,
                       previous: QModelIndex | QPersistentModelIndex) -> None:
        super().currentChanged(current, previous)
        path = str(current.data(GalleryRole.PathRole.value) or "") if current.isValid() else ""
        if path != self._last_path:
            self._last_path = path
            self.currentImageChanged.emit(path)

    @Slot(int)
    def _on_scrolled(self, value: int) -> None:
        self._retain_timer.start()

    @Slot()
    def _retain_visible(self) -> None:
        gallery = self.gallery_model()
        if gallery is not None:
            gallery.retain_thumbnails(self.visible_paths())


_SORTS = (("Score, high first", "score", True), ("Score, low first", "score", False), ("Name", "name", False),
          ("Review next", "review", False))  # unlabeled, least sure first (core.session.label_loop)


def _swatch(colour: str) -> QIcon:
    pixmap = QPixmap(10, 10)  # main thread only, like every widget
    pixmap.fill(QColor(colour))
    return QIcon(pixmap)


class GalleryWidget(QWidget):
    """The gallery view with its filter bar: sort, label toggles, split, defect type, review band, a count.

    `model`, `proxy` and `view` are public: the window feeds the model (items, scores, labels, review band)
    and listens to currentImageChanged(path).
    """

    currentImageChanged = Signal(str)

    def __init__(self, model: GalleryModel | None = None, parent: QWidget | None = None):
        super().__init__(parent)
        self.model = model if model is not None else GalleryModel(self)
        self.proxy = GalleryFilterProxy(self)
        self.proxy.setSourceModel(self.model)
        self.view = GalleryView(self, self.model.loader.size)
        self.view.setModel(self.proxy)
        self.view.currentImageChanged.connect(self.currentImageChanged)

        self.sort_combo = QComboBox()
        for text, key, desc in _SORTS:
            self.sort_combo.addItem(text, (key, desc))
        self.sort_combo.setToolTip("Order of the tiles; unscored images always come last. Review next: unlabeled "
                                   "images the model is least sure about first (inside the review band, nearest "
                                   "the threshold), labeled ones after them; it is re-sorted when new scores or "
                                   "thresholds arrive, not under your cursor while you label")
        self.label_checks: dict[str, QCheckBox] = {}
        for name in LABELS:
            box = QCheckBox(name)
            box.setIcon(_swatch(LABEL_COLOURS[name]))
            box.setChecked(True)
            box.setToolTip(f"Show images labeled {name}")
            box.toggled.connect(self._on_label_toggled)
            self.label_checks[name] = box
        self.split_combo = QComboBox()
        self.split_combo.setToolTip("Show one split only")
        self.defect_combo = QComboBox()
        self.defect_combo.setToolTip("Show one defect type only")
        self.review_check = QCheckBox("Review band")
        self.review_check.setIcon(_swatch(REVIEW_COLOUR))  # the colour of the frame of tiles in the band
        self.review_check.setToolTip("Show only images whose score lies between the two review thresholds")
        self.count_label = QLabel()
        self.count_label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        # Room for a large count from the start: the bar's rows must not change when the count text does
        # (the view would jump under a tile that was just scrolled to).
        self.count_label.setMinimumWidth(self.count_label.fontMetrics().horizontalAdvance("88888 / 88888 shown"))

        # One flow of controls: side by side when the dock is wide, as many rows as needed when it is narrow, so
        # the bar never forces a minimum width on the window nor squeezes a control until its text is cut.
        self._bar = FlowLayout()
        for control in (self.sort_combo, *self.label_checks.values(), self.split_combo, self.defect_combo,
                        self.review_check, self.count_label):
            self._bar.addWidget(control)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(self._bar)
        layout.addWidget(self.view, 1)
        # At least one whole tile (thumbnail and score) beside the scroll bar, however narrow the dock.
        self.view.setMinimumWidth(self.view.one_tile_width())

        self.sort_combo.currentIndexChanged.connect(self._on_sort_chosen)
        self.split_combo.currentIndexChanged.connect(self._on_split_chosen)
        self.defect_combo.currentIndexChanged.connect(self._on_defect_chosen)
        self.review_check.toggled.connect(self.proxy.set_review_only)
        self.model.modelReset.connect(self._refresh_choices)
        self.model.labelChanged.connect(self._on_label_changed)
        self.model.labelsReset.connect(self._refresh_choices)
        self.model.reviewBandChanged.connect(self._on_review_band)
        self.model.sortChanged.connect(self._on_sort_changed)
        self._count_timer = QTimer(self)  # filter changes emit many row signals: count once afterwards
        self._count_timer.setSingleShot(True)
        self._count_timer.setInterval(0)
        self._count_timer.timeout.connect(self._update_count)
        for signal in (self.proxy.rowsInserted, self.proxy.rowsRemoved, self.proxy.modelReset,
                       self.proxy.layoutChanged):
            signal.connect(self._schedule_count)
        self._refresh_choices()
        self._on_review_band(float("nan"), float("nan"))
        self._on_sort_changed(*self.model.sort_order())

    def shown_count(self) -> int:
        return self.proxy.rowCount()

    # -- filter bar -> proxy --------------------------------------------------------------------------------
    @Slot(int)
    def _on_sort_chosen(self, i: int) -> None:
        key, desc = self.sort_combo.itemData(i)
        self.proxy.set_sort(key, desc)

    @Slot(bool)
    def _on_label_toggled(self, checked: bool) -> None:
        self.proxy.set_label_filter([name for name, box in self.label_checks.items() if box.isChecked()])

    @Slot(int)
    def _on_split_chosen(self, i: int) -> None:
        self.proxy.set_split_filter(self.split_combo.itemData(i))

    @Slot(int)
    def _on_defect_chosen(self, i: int) -> None:
        self.proxy.set_defect_type_filter(self.defect_combo.itemData(i))

    # -- model -> filter bar --------------------------------------------------------------------------------
    @Slot()
    def _refresh_choices(self) -> None:
        """Offer the splits and defect types the images have, keeping the current choice when it still exists."""
        self._fill_combo(self.split_combo, [("All splits", None)] + [(s, s) for s in self.model.splits()])
        self._fill_combo(self.defect_combo, [("All defect types", None), ("No defect type", "")]
                         + [(d, d) for d in self.model.defect_types()])
        self._schedule_count()

    @staticmethod
    def _fill_combo(combo: QComboBox, entries: list[tuple[str, str | None]]) -> None:
        current = combo.currentData()
        combo.blockSignals(True)
        combo.clear()
        for text, value in entries:
            combo.addItem(text, value)
        at = combo.findData(current) if current is not None else 0
        combo.setCurrentIndex(max(at, 0))
        combo.blockSignals(False)
        if combo.currentData() != current:  # the chosen value vanished: let the proxy know it is "any" now
            combo.currentIndexChanged.emit(combo.currentIndex())

    @Slot(str, str, str)
    def _on_label_changed(self, path: str, label: str, defect_type: str) -> None:
        if defect_type and self.defect_combo.findData(defect_type) < 0:
            self._refresh_choices()

    @Slot(float, float)
    def _on_review_band(self, t1: float, t2: float) -> None:
        band = self.model.review_band()
        self.review_check.setEnabled(band is not None)
        if band is None:
            self.review_check.setChecked(False)
            self.review_check.setToolTip("No review band yet: set two thresholds in the threshold panel")
        else:
            self.review_check.setToolTip(f"Show only images with {format_score(band[0])} <= score < "
                                         f"{format_score(band[1])}")

    @Slot(str, bool)
    def _on_sort_changed(self, key: str, descending: bool) -> None:
        for i in range(self.sort_combo.count()):
            if self.sort_combo.itemData(i) == (key, descending):
                self.sort_combo.blockSignals(True)
                self.sort_combo.setCurrentIndex(i)
                self.sort_combo.blockSignals(False)
                return

    @Slot()
    def _schedule_count(self, *args: object) -> None:
        self._count_timer.start()

    @Slot()
    def _update_count(self) -> None:
        self.count_label.setText(f"{self.proxy.rowCount()} / {self.model.rowCount()} shown")
