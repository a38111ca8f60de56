"""Image viewer: the part image with a heat-map overlay of one score component, the ground-truth contour
and the values of every component under the cursor.

The viewer only draws. Maps are spread onto the pixels by core.detectors.results.pixel_map (cached per image and
component, see viewer_maps), and the "shared" colour range is computed by the caller over the whole run,
so the viewer never needs every map of a run.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, Qt, Signal, Slot
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from core.detectors.results import MapGeometry
from inspector_gui.flow_layout import FlowLayout, joined
from inspector_gui.viewer_maps import DenseMapCache, format_value, mask_contour, patch_cell, safe_levels

# Menu label -> pyqtgraph colormap name. Perceptually ordered maps first; turbo for people used to "jet".
COLORMAPS: dict[str, str] = {"inferno": "inferno", "viridis": "viridis", "magma": "magma", "turbo": "turbo"}
NORMALIZATIONS: dict[str, str] = {"shared": "shared range", "per_image": "per image"}
CONTOUR_PEN = pg.mkPen("#00e5ff", width=2)  # cyan: visible on grey parts and on every colormap above
OUTLINE_PEN = pg.mkPen("#39ff14", width=2, style=Qt.PenStyle.DashLine)  # the patch the morph strips show
HOVER_HINT = "Move the mouse over the image to read the patch values."


class ImageViewer(QWidget):
    """Zoom (wheel) and pan (drag) an image with a heat-map overlay; see the module docstring."""

    componentChanged = Signal(str)
    # The read-out under the cursor ("" off the image); emitted when it changes, not on every mouse move.
    hoverInfo = Signal(str)
    # A left click on the image: (x, y) in the image's pixels. The window shows that patch's morph strips.
    imageClicked = Signal(float, float)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._image: np.ndarray | None = None
        self._maps: dict[str, np.ndarray] = {}
        self._geometry: MapGeometry | None = None
        self._has_mask = False
        self._shared: dict[str, tuple[float, float]] = {}
        self._default = ""
        self._cache = DenseMapCache()
        self._colormap = "inferno"
        self._norm = "shared"
        self._levels: tuple[float, float] | None = None
        self._span: tuple[float, float] | None = None  # min-max of the shown dense map
        self._last_hover = ""

        # --- controls ----------------------------------------------------------------------------
        self.component_box = QComboBox()
        self.component_box.setToolTip("Score component shown as the heat map")
        self.component_box.setMinimumContentsLength(4)
        self.opacity_slider = QSlider(Qt.Orientation.Horizontal)
        self.opacity_slider.setRange(0, 100)
        self.opacity_slider.setValue(50)
        self.opacity_slider.setFixedWidth(120)
        self.opacity_slider.setToolTip("Heat-map opacity")
        self.opacity_label = QLabel("50 %")
        self.opacity_label.setMinimumWidth(40)
        self.colormap_box = QComboBox()
        self.colormap_box.addItems(list(COLORMAPS))
        self.norm_box = QComboBox()
        for key, text in NORMALIZATIONS.items():
            self.norm_box.addItem(text, key)
        self.norm_box.setToolTip("shared: one colour range for every image of the run (colours compare between "
                                 "images); per image: this map's min to max")
        self.mask_check = QCheckBox("Mask")
        self.mask_check.setChecked(True)
        self.mask_check.setToolTip("Ground-truth defect outline")
        self.title_label = QLabel("")
        self.title_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        bar = FlowLayout()  # wraps onto a second row rather than making the window wider than a small screen
        for widget in (joined(QLabel("Map"), self.component_box),
                       joined(QLabel("Opacity"), self.opacity_slider, self.opacity_label),
                       joined(QLabel("Colours"), self.colormap_box), joined(QLabel("Range"), self.norm_box),
                       self.mask_check, self.title_label):
            bar.addWidget(widget)

        # --- view ----------------------------------------------------------------------------------
        self.graphics = pg.GraphicsLayoutWidget()
        self.view_box: pg.ViewBox = self.graphics.addViewBox(row=0, col=0, lockAspect=True, invertY=True)
        self.image_item = pg.ImageItem(axisOrder="row-major")
        self.overlay_item = pg.ImageItem(axisOrder="row-major")
        self.overlay_item.setZValue(1)
        self.contour_item = pg.PlotDataItem(pen=CONTOUR_PEN, connect="finite")
        self.contour_item.setZValue(2)
        self.outline_item = pg.PlotDataItem(pen=OUTLINE_PEN)
        self.outline_item.setZValue(3)
        for item in (self.image_item, self.overlay_item, self.contour_item, self.outline_item):
            self.view_box.addItem(item)
        # Not linked to the overlay: the bar would then own the overlay's levels and lookup table.
        self.color_bar = pg.ColorBarItem(values=(0.0, 1.0), colorMap=pg.colormap.get("inferno"), interactive=False,
                                         width=16, colorMapMenu=False)
        self.graphics.addItem(self.color_bar, row=0, col=1)
        self.graphics.scene().sigMouseMoved.connect(self._on_mouse_moved)
        self.graphics.scene().sigMouseClicked.connect(self._on_mouse_clicked)

        self.hover_label = QLabel(HOVER_HINT)
        self.hover_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.range_label = QLabel("")
        self.range_label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        status = QHBoxLayout()
        status.setContentsMargins(0, 0, 0, 0)
        status.addWidget(self.hover_label, 1)
        status.addWidget(self.range_label)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addLayout(bar)
        layout.addWidget(self.graphics, 1)
        layout.addLayout(status)

        self.component_box.currentTextChanged.connect(self._on_component)
        self.opacity_slider.valueChanged.connect(self._on_opacity)
        self.colormap_box.currentTextChanged.connect(self.set_colormap)
        self.norm_box.currentIndexChanged.connect(lambda _i: self.set_normalization(self.norm_box.currentData()))
        self.mask_check.toggled.connect(self.set_mask_visible)

        self._apply_colormap()
        self._on_opacity(self.opacity_slider.value())
        self.clear()

    # ================================================================== public API
    def set_image(self, image: np.ndarray, maps: dict[str, np.ndarray] | None = None,
                  geometry: MapGeometry | None = None, mask: np.ndarray | None = None, title: str = "") -> None:
        """Show one image (H x W x C float in [0, 1], C = 1 or 3) with its patch grids (component -> grid).

        Without geometry a map must be a pixel map of the image's size; a patch grid cannot be placed
        without knowing its stride and patch size.
        """
        img = np.asarray(image)
        if img.ndim == 3 and img.shape[2] == 1:
            img = img[:, :, 0]
        if img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] not in (3, 4)):
            raise ValueError(f"image must be H x W, H x W x 1 or H x W x 3, not {np.shape(image)}")
        shape = (int(img.shape[0]), int(img.shape[1]))
        maps = {k: np.asarray(v) for k, v in (maps or {}).items()}
        if maps and geometry is None:
            bad = [k for k, v in maps.items() if v.shape != shape]
            if bad:
                raise ValueError(f"maps {bad} are not pixel maps of the {shape} image: pass their MapGeometry")
            geometry = MapGeometry(shape, shape, 1, 1)
        if geometry is not None and tuple(geometry.original_shape) != shape:
            raise ValueError(f"geometry is for a {tuple(geometry.original_shape)} image, this image is {shape}")

        reset_view = self._image is None or self._image.shape[:2] != shape
        self._image = img
        self._maps = maps
        self._geometry = geometry if maps else None
        hi = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}.get(img.dtype, 1.0)
        self.image_item.setImage(img, levels=(0.0, hi), autoLevels=False)
        self.title_label.setText(title)
        if maps and set(maps) != {self.component_box.itemText(i) for i in range(self.component_box.count())}:
            names = list(maps)
            self._fill_components(names, self._default if self._default in maps else names[0], update=False)
        self._set_map_controls_enabled(bool(maps))
        self._update_overlay()
        self._set_mask(mask, shape)
        if reset_view:  # keep the user's zoom while they step through images of one size
            self.view_box.autoRange(padding=0.0)
        self._last_hover = ""
        self.hover_label.setText(HOVER_HINT)

    def set_components(self, names: list[str], default: str) -> None:
        """The components of the run, in the combo with `default` first (the detector's own score)."""
        if not names:
            raise ValueError("set_components needs at least one component name")
        self._default = default if default in names else names[0]
        self._fill_components(list(names), self._default)

    def set_shared_range(self, component: str, lo: float, hi: float) -> None:
        """The colour range of `component` for every image of the run (computed by the caller)."""
        self._shared[component] = (float(lo), float(hi))
        if component == self.component() and self._norm == "shared":
            self._apply_levels()

    def set_component(self, name: str) -> None:
        idx = self.component_box.findText(name)
        if idx < 0:
            known = [self.component_box.itemText(i) for i in range(self.component_box.count())]
            raise ValueError(f"unknown component {name!r}; known: {known}")
        self.component_box.setCurrentIndex(idx)

    def component(self) -> str:
        return self.component_box.currentText()

    def set_opacity(self, value: float) -> None:
        """Overlay opacity, 0 (image only) to 1 (map only)."""
        self.opacity_slider.setValue(round(min(max(float(value), 0.0), 1.0) * 100))

    def opacity(self) -> float:
        return self.opacity_slider.value() / 100.0

    @Slot(str)
    def set_colormap(self, name: str) -> None:
        if name not in COLORMAPS:
            raise ValueError(f"unknown colour map {name!r}; known: {list(COLORMAPS)}")
        self._colormap = name
        if self.colormap_box.currentText() != name:
            self.colormap_box.blockSignals(True)
            self.colormap_box.setCurrentText(name)
            self.colormap_box.blockSignals(False)
        self._apply_colormap()

    def colormap(self) -> str:
        return self._colormap

    def set_normalization(self, mode: str) -> None:
        """'shared' (the caller's range for the whole run) or 'per_image' (this map's min to max)."""
        if mode not in NORMALIZATIONS:
            raise ValueError(f"normalisation must be one of {list(NORMALIZATIONS)}, not {mode!r}")
        self._norm = mode
        idx = self.norm_box.findData(mode)
        if self.norm_box.currentIndex() != idx:
            self.norm_box.setCurrentIndex(idx)
        self._apply_levels()

    def normalization(self) -> str:
        return self._norm

    @Slot(bool)
    def set_mask_visible(self, visible: bool) -> None:
        if self.mask_check.isChecked() != visible:
            self.mask_check.setChecked(visible)
        self.contour_item.setVisible(bool(visible) and self._has_mask)

    def mask_visible(self) -> bool:
        return self.mask_check.isChecked()

    def levels(self) -> tuple[float, float] | None:
        """The overlay's current colour range (None when no map is shown)."""
        return self._levels

    def set_outline(self, box: tuple[float, float, float, float] | None) -> None:
        """Outline the rectangle (x0, y0, x1, y1) in image pixels (the patch the morph strips belong to);
        None removes it."""
        if box is None:
            self.outline_item.setData([], [])
            self.outline_item.setVisible(False)
            return
        x0, y0, x1, y1 = (float(v) for v in box)
        self.outline_item.setData([x0, x1, x1, x0, x0], [y0, y0, y1, y1, y0])
        self.outline_item.setVisible(True)

    def outline(self) -> tuple[float, float, float, float] | None:
        """The outlined rectangle, or None."""
        if not self.outline_item.isVisible():
            return None
        xs, ys = self.outline_item.getData()
        if xs is None or len(xs) == 0:
            return None
        return float(min(xs)), float(min(ys)), float(max(xs)), float(max(ys))

    def cell_at(self, x: float, y: float) -> tuple[int, int] | None:
        """The patch-grid cell (row, col) of the shown maps under image point (x, y); None without a patch grid."""
        grid = self._maps.get(self.component())
        if grid is None or self._geometry is None or (self._geometry.patch == 1 and self._geometry.stride == 1):
            return None
        return patch_cell(x, y, grid.shape, self._geometry)

    def cell_box(self, cell: tuple[int, int] | None) -> tuple[float, float, float, float] | None:
        """The rectangle (x0, y0, x1, y1) in image pixels of patch-grid cell (row, col) of the shown maps; the
        whole image for None (a whole-image unit); None when nothing is shown."""
        if self._image is None:
            return None
        h, w = self._image.shape[:2]
        g = self._geometry
        if cell is None or g is None or (g.patch == 1 and g.stride == 1):
            return 0.0, 0.0, float(w), float(h)
        sy, sx = h / g.input_shape[0], w / g.input_shape[1]
        y0, x0 = cell[0] * g.stride, cell[1] * g.stride
        return x0 * sx, y0 * sy, (x0 + g.patch) * sx, (y0 + g.patch) * sy

    def clear(self) -> None:
        """Nothing shown: no image, no map, no contour (e.g. the image failed to load)."""
        self.set_outline(None)
        self._image = None
        self._maps = {}
        self._geometry = None
        self.image_item.clear()
        self.overlay_item.clear()
        self.overlay_item.setVisible(False)
        self._set_mask(None, (0, 0))
        self._levels = None
        self._span = None
        self.title_label.setText("")
        self.range_label.setText("")
        self.hover_label.setText("")
        self._last_hover = ""
        self._set_map_controls_enabled(False)

    # ================================================================== internals
    def _fill_components(self, names: list[str], default: str, update: bool = True) -> None:
        before = self.component()
        ordered = [default] + [n for n in names if n != default]
        self.component_box.blockSignals(True)
        self.component_box.clear()
        self.component_box.addItems(ordered)
        self.component_box.setCurrentText(before if before in ordered else default)
        self.component_box.blockSignals(False)
        if self.component() != before:
            if update:
                self._update_overlay()
            self.componentChanged.emit(self.component())

    @Slot(str)
    def _on_component(self, name: str) -> None:
        self._update_overlay()
        self.componentChanged.emit(name)

    @Slot(int)
    def _on_opacity(self, value: int) -> None:
        self.opacity_label.setText(f"{value} %")
        self.overlay_item.setOpacity(value / 100.0)

    def _set_map_controls_enabled(self, enabled: bool) -> None:
        for w in (self.component_box, self.opacity_slider, self.colormap_box, self.norm_box):
            w.setEnabled(enabled)
        self.color_bar.setVisible(enabled)

    def _update_overlay(self) -> None:
        """New data for the overlay (from the cache when seen before); the lookup table stays set."""
        grid = self._maps.get(self.component())
        if grid is None or self._geometry is None:
            self.overlay_item.clear()
            self.overlay_item.setVisible(False)
            self._levels = self._span = None
            self.range_label.setText("no heat map" if self._image is not None and not self._maps else "")
            return
        dense, self._span = self._cache.get(grid, self._geometry)
        self.overlay_item.setImage(dense, levels=self._target_levels(self._span), autoLevels=False)
        self.overlay_item.setVisible(True)
        self._apply_levels()

    def _target_levels(self, span: tuple[float, float]) -> tuple[float, float]:
        shared = self._shared.get(self.component())
        if self._norm == "shared" and shared is not None:
            return safe_levels(*shared)
        return safe_levels(*span)

    def _apply_levels(self) -> None:
        if self._span is None:
            return
        levels = self._target_levels(self._span)
        self._levels = levels
        self.overlay_item.setLevels(levels)
        self.color_bar.setLevels(levels)
        if self._norm == "shared" and self.component() not in self._shared:
            how = "per image (no shared range given)"
        else:
            how = NORMALIZATIONS[self._norm]
        self.range_label.setText(
            f"{self.component()}: {format_value(levels[0])} to {format_value(levels[1])}, {how}")

    def _apply_colormap(self) -> None:
        cmap = pg.colormap.get(COLORMAPS[self._colormap])
        self.overlay_item.setLookupTable(cmap.getLookupTable(nPts=256, alpha=False))
        self.color_bar.setColorMap(cmap)

    def _set_mask(self, mask: np.ndarray | None, shape: tuple[int, int]) -> None:
        xs, ys = mask_contour(mask, shape) if mask is not None else (np.zeros(0), np.zeros(0))
        self._has_mask = xs.size > 0
        self.contour_item.setData(xs, ys, connect="finite")
        self.contour_item.setVisible(self._has_mask and self.mask_check.isChecked())
        self.mask_check.setEnabled(self._has_mask)

    def _on_mouse_clicked(self, event) -> None:
        if self._image is None or event.button() != Qt.MouseButton.LeftButton:
            return
        p = self.view_box.mapSceneToView(event.scenePos())
        h, w = self._image.shape[:2]
        if 0 <= p.x() < w and 0 <= p.y() < h:
            self.imageClicked.emit(float(p.x()), float(p.y()))

    @Slot(QPointF)
    def _on_mouse_moved(self, scene_pos: QPointF) -> None:
        if self._image is None:
            return
        p = self.view_box.mapSceneToView(scene_pos)
        self._report_hover(p.x(), p.y())

    def _report_hover(self, x: float, y: float) -> None:
        """Status text for the image point (x, y): the pixel and every component of the patch under it."""
        h, w = self._image.shape[:2]
        if not (0 <= x < w and 0 <= y < h):
            text = ""
        else:
            text = f"x {int(x)} y {int(y)}"
            if self._maps and self._geometry is not None:
                cells = {}
                for name in (self.component_box.itemText(k) for k in range(self.component_box.count())):
                    grid = self._maps.get(name)
                    if grid is not None:
                        cells[name] = (patch_cell(x, y, grid.shape, self._geometry), grid)
                if cells:
                    i, j = next(iter(cells.values()))[0]
                    values = "  ".join(f"{n} {format_value(g[c])}" for n, (c, g) in cells.items())
                    text += f" | patch ({i}, {j}): {values}"
        if text != self._last_hover:
            self._last_hover = text
            self.hover_label.setText(text or HOVER_HINT)
            self.hoverInfo.emit(text)
