"""Gallery: model rows and roles, sorting and filtering, thumbnails off the GUI thread, broken files, the widget."""

from __future__ import annotations

import math
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
from PySide6.QtCore import QPersistentModelIndex, QPoint, Qt, QThread
from PySide6.QtGui import QColor, QImage
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from core.vocabulary import LABEL_COLOURS
from inspector_gui.gallery import (
    GalleryFilterProxy,
    GalleryModel,
    GalleryRole,
    GalleryWidget,
    ThumbnailLoader,
    decode_thumbnail,
    format_score,
)

N_GOOD_FILES = 30


def _spec(i: int) -> tuple[str, str, str]:
    """split, label, defect type of image i (the corrupt file is i = 30)."""
    if i == 30:
        return "test", "unlabeled", ""
    split = "train" if i < 10 else "test"
    label = "good" if i < 10 else "unlabeled" if i < 20 else "defect" if i < 25 else "suspicious"
    defect = "scratch" if 20 <= i < 23 else "hole" if 23 <= i < 25 else ""
    return split, label, defect


def _score(i: int) -> float:
    return math.nan if i % 6 == 0 else i / 10


@pytest.fixture(scope="module")
def image_paths(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """30 small PNGs (grey and colour, landscape and portrait) and one corrupt file, as strings."""
    root = tmp_path_factory.mktemp("gallery_images")
    rng = np.random.default_rng(1)
    paths = []
    for i in range(N_GOOD_FILES):
        h, w = (48, 64) if i % 2 else (120, 60)
        img = rng.integers(0, 255, (h, w) if i % 3 else (h, w, 3), dtype=np.uint8)
        path = root / f"part_{i:02d}.png"
        assert cv2.imwrite(str(path), img)
        paths.append(str(path))
    corrupt = root / "part_30_corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    paths.append(str(corrupt))
    return paths


@pytest.fixture
def model(qtbot, image_paths: list[str]):
    m = GalleryModel()
    specs = [_spec(i) for i in range(len(image_paths))]
    m.set_items(image_paths, [s[0] for s in specs], [s[1] for s in specs], [s[2] for s in specs])
    yield m
    m.shutdown()


@pytest.fixture
def scored(model: GalleryModel, image_paths: list[str]) -> GalleryModel:
    model.set_scores(np.array([_score(i) for i in range(len(image_paths))]))
    return model


@pytest.fixture
def proxy(scored: GalleryModel) -> GalleryFilterProxy:
    p = GalleryFilterProxy()
    p.setSourceModel(scored)
    return p


def _expected_score_order(paths: list[str], descending: bool = True) -> list[str]:
    scored = [(p, _score(i)) for i, p in enumerate(paths) if not math.isnan(_score(i))]
    scored.sort(key=lambda ps: (-ps[1] if descending else ps[1], Path(ps[0]).name))
    return [p for p, _ in scored] + sorted((p for i, p in enumerate(paths) if math.isnan(_score(i))),
                                           key=lambda p: Path(p).name)


def _data(model, path: str, role) -> object:
    row = model.row_of(path)
    assert row >= 0, path
    return model.index(row, 0).data(role.value if isinstance(role, GalleryRole) else role)


# -- model ----------------------------------------------------------------------------------------------------
def test_rows_and_roles(model: GalleryModel, image_paths: list[str]):
    assert model.rowCount() == len(image_paths) == 31
    path = image_paths[21]
    row = model.row_of(path)
    assert model.path(row) == path
    assert _data(model, path, Qt.ItemDataRole.DisplayRole) == "part_21.png"
    assert _data(model, path, GalleryRole.PathRole) == path
    assert _data(model, path, GalleryRole.SplitRole) == "test"
    assert _data(model, path, GalleryRole.LabelRole) == "defect"
    assert _data(model, path, GalleryRole.DefectTypeRole) == "scratch"
    assert _data(model, path, GalleryRole.ItemRole) == 21
    assert math.isnan(_data(model, path, GalleryRole.ScoreRole))
    assert _data(model, path, GalleryRole.ReviewRole) is False
    assert model.row_of("/no/such/file.png") == -1
    assert model.splits() == ["train", "test"]
    assert model.defect_types() == ["hole", "scratch"]


def test_set_items_rejects_bad_input(model: GalleryModel, image_paths: list[str]):
    with pytest.raises(ValueError, match="listed twice"):
        model.set_items([image_paths[0], image_paths[1], image_paths[0]])
    with pytest.raises(ValueError, match="2 paths but 1 splits"):
        model.set_items(image_paths[:2], ["train"])
    with pytest.raises(ValueError, match="unknown label 'broken'"):
        model.set_items(image_paths[:1], labels=["broken"])
    model.set_items(image_paths[:2], labels=["unknown", "normal"])  # folder-scan and design-text aliases
    assert [model.label(r) for r in range(2)] == ["unlabeled", "good"]


def test_set_scores_emits_one_datachanged_for_all_rows(qtbot, model: GalleryModel, image_paths: list[str]):
    seen = []
    model.dataChanged.connect(lambda tl, br, roles: seen.append((tl.row(), br.row(), list(roles))))
    model.set_scores(np.array([_score(i) for i in range(len(image_paths))]))
    assert len(seen) == 1
    assert seen[0][:2] == (0, len(image_paths) - 1)
    assert GalleryRole.ScoreRole.value in seen[0][2]
    assert _data(model, image_paths[7], GalleryRole.ScoreRole) == pytest.approx(0.7)
    np.testing.assert_array_equal(np.isnan(model.scores()), [i % 6 == 0 for i in range(31)])
    with pytest.raises(ValueError, match="3 scores for 31 images"):
        model.set_scores([1.0, 2.0, 3.0])


def test_sort_by_score_descending_nan_last_then_ascending_and_name(proxy: GalleryFilterProxy,
                                                                    image_paths: list[str]):
    assert proxy.paths() == _expected_score_order(image_paths, descending=True)
    proxy.set_sort("score", descending=False)
    assert proxy.paths() == _expected_score_order(image_paths, descending=False)  # NaN still last
    proxy.set_sort("name", descending=False)
    assert proxy.paths() == sorted(image_paths, key=lambda p: Path(p).name)
    with pytest.raises(ValueError, match="sort key"):
        proxy.set_sort("size")


def test_rescoring_resorts_and_rows_follow_paths(proxy: GalleryFilterProxy, scored: GalleryModel,
                                                 image_paths: list[str]):
    held = proxy.index(0, 0)  # highest score
    persistent = QPersistentModelIndex(held)
    top_path = held.data(GalleryRole.PathRole.value)
    new = np.arange(len(image_paths), dtype=float)[::-1].copy()  # now image 0 scores highest
    scored.set_scores(new)
    assert proxy.paths()[:3] == image_paths[:3]
    assert persistent.data(GalleryRole.PathRole.value) == top_path  # a held index follows its image
    assert scored.path(scored.row_of(top_path)) == top_path


def test_filter_by_label(proxy: GalleryFilterProxy, image_paths: list[str]):
    proxy.set_label_filter({"defect"})
    assert sorted(proxy.paths()) == image_paths[20:25]
    proxy.set_label_filter(["good", "suspicious"])
    assert sorted(proxy.paths()) == image_paths[:10] + image_paths[25:30]
    proxy.set_label_filter([])
    assert proxy.rowCount() == 0
    proxy.set_label_filter(None)
    assert proxy.rowCount() == 31


def test_filter_by_split_and_defect_type_combined(proxy: GalleryFilterProxy, image_paths: list[str]):
    proxy.set_split_filter("train")
    assert sorted(proxy.paths()) == image_paths[:10]
    proxy.set_split_filter("unsorted")  # no image has it
    assert proxy.rowCount() == 0
    proxy.set_split_filter("test")
    proxy.set_defect_type_filter("scratch")
    assert sorted(proxy.paths()) == image_paths[20:23]
    proxy.set_defect_type_filter("")  # images without a defect type
    assert sorted(proxy.paths()) == image_paths[10:20] + image_paths[25:31]
    proxy.set_label_filter({"suspicious"})
    assert sorted(proxy.paths()) == image_paths[25:30]
    # the order among shown rows is still the score order
    assert proxy.paths() == [p for p in _expected_score_order(image_paths) if p in image_paths[25:30]]


def test_review_band_marks_rows_and_filters(proxy: GalleryFilterProxy, scored: GalleryModel,
                                            image_paths: list[str]):
    scored.set_review_band(1.0, 2.0)
    band = [p for i, p in enumerate(image_paths) if 1.0 <= _score(i) < 2.0]  # NaN never in band
    assert band == [image_paths[i] for i in (10, 11, 13, 14, 15, 16, 17, 19)]
    assert [p for p in image_paths if _data(scored, p, GalleryRole.ReviewRole)] == band
    proxy.set_review_only(True)
    assert sorted(proxy.paths()) == band
    scored.set_review_band(2.5, 2.95)  # band moves: the filter follows without being set again
    assert sorted(proxy.paths()) == [image_paths[i] for i in (25, 26, 27, 28, 29)]
    scored.set_scores(np.full(len(image_paths), 2.6))  # new scores: every image is now in the band
    assert proxy.rowCount() == 31
    scored.clear_review_band()
    assert proxy.rowCount() == 0
    with pytest.raises(ValueError):
        scored.set_review_band(2.0, 1.0)


def test_set_label_updates_roles_signal_and_filter(qtbot, proxy: GalleryFilterProxy, scored: GalleryModel,
                                                   image_paths: list[str]):
    path = image_paths[3]  # good, train
    proxy.set_label_filter({"good"})
    assert path in proxy.paths()
    changed = []
    scored.dataChanged.connect(lambda tl, br, roles: changed.append((tl.row(), br.row())))
    with qtbot.waitSignal(scored.labelChanged) as blocker:
        scored.set_label(scored.row_of(path), "defect", "dent")
    assert blocker.args == [path, "defect", "dent"]
    assert changed == [(scored.row_of(path), scored.row_of(path))]
    assert _data(scored, path, GalleryRole.LabelRole) == "defect"
    assert _data(scored, path, GalleryRole.DefectTypeRole) == "dent"
    assert "label defect (dent)" in _data(scored, path, Qt.ItemDataRole.ToolTipRole)
    assert path not in proxy.paths()  # no longer good: filtered out
    assert "dent" in scored.defect_types()
    with pytest.raises(ValueError):
        scored.set_label(0, "maybe")
    with pytest.raises(IndexError):
        scored.set_label(31, "good")


def test_format_score():
    assert format_score(math.nan) == "—"
    assert format_score(0.5) == "0.5"
    assert format_score(1234567.0) == "1.235e6"
    assert format_score(-0.000123456) == "-0.0001235"
    assert format_score(3.0e-7) == "3e-7"


# -- thumbnails -----------------------------------------------------------------------------------------------
def test_decode_thumbnail_fits_box_and_keeps_colour(tmp_path: Path):
    bgr = np.zeros((200, 100, 3), np.uint8)
    bgr[:, :, 2] = 255  # pure red in OpenCV's BGR order
    cv2.imwrite(str(tmp_path / "red.png"), bgr)
    image = decode_thumbnail(str(tmp_path / "red.png"), 96)
    assert (image.width(), image.height()) == (48, 96)
    assert image.format() == QImage.Format.Format_RGB888
    assert QColor(image.pixel(10, 10)).getRgb()[:3] == (255, 0, 0)
    cv2.imwrite(str(tmp_path / "grey.png"), np.full((30, 40), 128, np.uint8))
    small = decode_thumbnail(str(tmp_path / "grey.png"), 96)
    assert (small.width(), small.height(), small.format()) == (40, 30, QImage.Format.Format_Grayscale8)


def test_thumbnails_arrive_from_a_worker_thread(qtbot, model: GalleryModel, image_paths: list[str]):
    threads, idents = [], []
    original = model.loader.decode_fn

    def recording_decode(path: str, size: int) -> QImage:
        threads.append(QThread.currentThread())
        idents.append(threading.get_ident())
        return original(path, size)

    model.loader.decode_fn = recording_decode
    wanted = image_paths[:4]
    first = [_data(model, p, Qt.ItemDataRole.DecorationRole) for p in wanted]  # asking schedules the decode
    assert all(isinstance(img, QImage) and img.width() == 96 for img in first)  # the placeholder, for now
    with qtbot.waitSignal(model.dataChanged, timeout=5000,
                          check_params_cb=lambda tl, br, roles: Qt.ItemDataRole.DecorationRole.value in roles):
        pass
    qtbot.waitUntil(lambda: all(model.thumbnail_state(p) == "ready" for p in wanted), timeout=5000)
    main = QApplication.instance().thread()
    assert len(threads) == 4
    assert all(t is not None and t != main for t in threads)
    assert threading.main_thread().ident not in idents
    img = _data(model, wanted[0], Qt.ItemDataRole.DecorationRole)  # image 0 is 120 x 60 (h x w)
    assert (img.width(), img.height()) == (48, 96)
    assert model.loader.decoded_count == 4


def test_corrupt_file_gets_placeholder_and_reason(qtbot, model: GalleryModel, image_paths: list[str]):
    corrupt = image_paths[30]
    loading = _data(model, corrupt, Qt.ItemDataRole.DecorationRole)
    qtbot.waitUntil(lambda: model.thumbnail_state(corrupt) == "broken", timeout=5000)
    error = _data(model, corrupt, GalleryRole.ErrorRole)
    assert "part_30_corrupt.png" in error and "corrupt" in error
    assert _data(model, corrupt, Qt.ItemDataRole.ToolTipRole).startswith("Cannot show this image: ")
    broken = _data(model, corrupt, Qt.ItemDataRole.DecorationRole)
    assert isinstance(broken, QImage) and not broken.isNull() and broken != loading
    assert _data(model, image_paths[0], GalleryRole.ErrorRole) == ""


def test_decoder_exception_becomes_broken_tile_not_crash(qtbot, model: GalleryModel, image_paths: list[str]):
    def failing(path: str, size: int) -> QImage:
        raise MemoryError("out of memory")

    model.loader.decode_fn = failing
    _data(model, image_paths[5], Qt.ItemDataRole.DecorationRole)
    qtbot.waitUntil(lambda: model.thumbnail_state(image_paths[5]) == "broken", timeout=5000)
    assert "MemoryError: out of memory" in _data(model, image_paths[5], GalleryRole.ErrorRole)


def test_cache_is_lru_bounded(qtbot, image_paths: list[str]):
    loader = ThumbnailLoader(size=32, capacity=5, threads=1)
    try:
        for p in image_paths[:5]:
            loader.request(p)
        qtbot.waitUntil(lambda: len(loader.cached_paths()) == 5, timeout=5000)
        assert loader.get(image_paths[0]) is not None  # touch: now the most recent
        for p in image_paths[5:8]:
            loader.request(p)
        qtbot.waitUntil(lambda: loader.decoded_count == 8, timeout=5000)
        assert set(loader.cached_paths()) == {image_paths[0], *image_paths[5:8], image_paths[4]}
    finally:
        loader.shutdown()


def test_retain_drops_pending_decodes_of_scrolled_away_tiles(qtbot, image_paths: list[str]):
    loader = ThumbnailLoader(size=32, threads=1)
    gate, decoded = threading.Event(), []

    def gated(path: str, size: int) -> QImage:
        gate.wait(5)
        decoded.append(path)
        return decode_thumbnail(path, size)

    loader.decode_fn = gated
    try:
        for p in image_paths[:10]:
            loader.request(p)
        qtbot.waitUntil(lambda: loader._pool.activeThreadCount() == 1, timeout=5000)
        dropped = loader.retain([image_paths[0], image_paths[9]])  # the rest scrolled off screen
        assert dropped == 8
        gate.set()
        loader.wait(5000)
        qtbot.waitUntil(lambda: loader.pending_count() == 0, timeout=5000)
        assert sorted(decoded) == [image_paths[0], image_paths[9]]
    finally:
        gate.set()
        loader.shutdown()


# -- view and widget ------------------------------------------------------------------------------------------
@pytest.fixture
def widget(qtbot, scored: GalleryModel):
    w = GalleryWidget(scored)
    qtbot.addWidget(w)
    w.resize(900, 360)
    w.show()
    qtbot.waitExposed(w)
    return w


def _wait_visible_thumbnails(qtbot, w: GalleryWidget) -> list[str]:
    qtbot.waitUntil(lambda: bool(w.view.visible_paths()) and all(
        w.model.thumbnail_state(p) in ("ready", "broken") for p in w.view.visible_paths()), timeout=8000)
    return w.view.visible_paths()


def test_only_tiles_on_screen_are_decoded(qtbot, scored: GalleryModel):
    decoded = []
    original = scored.loader.decode_fn

    def recording_decode(path: str, size: int) -> QImage:  # runs in the worker
        decoded.append(path)
        return original(path, size)

    scored.loader.decode_fn = recording_decode
    w = GalleryWidget(scored)
    qtbot.addWidget(w)
    w.resize(700, 330)
    w.show()
    qtbot.waitExposed(w)
    visible = _wait_visible_thumbnails(qtbot, w)
    assert 0 < len(visible) < 31
    assert set(decoded) == set(visible)  # every tile on screen, and nothing else
    w.view.verticalScrollBar().setValue(w.view.verticalScrollBar().maximum())
    lower = _wait_visible_thumbnails(qtbot, w)  # scrolling down decodes the newly shown tiles
    assert w.proxy.paths()[-1] in lower
    assert set(lower) <= set(decoded) and len(decoded) == len(set(decoded))  # none decoded twice
    assert len(decoded) < 31


def test_click_emits_current_image_changed(qtbot, widget: GalleryWidget):
    view = widget.view
    index = widget.proxy.index(2, 0)
    center = view.visualRect(index).center()
    with qtbot.waitSignal(widget.currentImageChanged, timeout=2000) as blocker:
        QTest.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, center)
    assert blocker.args == [index.data(GalleryRole.PathRole.value)]
    assert view.selected_paths() == blocker.args
    target = widget.proxy.paths()[5]
    with qtbot.waitSignal(widget.currentImageChanged, timeout=2000) as blocker:
        assert view.select_path(target)
    assert blocker.args == [target]
    assert not view.select_path("/not/in/gallery.png")


def test_filter_bar_drives_proxy_and_count(qtbot, widget: GalleryWidget, image_paths: list[str]):
    qtbot.waitUntil(lambda: widget.count_label.text() == "31 / 31 shown")
    widget.label_checks["good"].setChecked(False)
    assert widget.shown_count() == 21 and image_paths[0] not in widget.proxy.paths()
    qtbot.waitUntil(lambda: widget.count_label.text() == "21 / 31 shown")
    widget.label_checks["good"].setChecked(True)
    widget.split_combo.setCurrentIndex(widget.split_combo.findData("train"))
    assert sorted(widget.proxy.paths()) == image_paths[:10]
    widget.split_combo.setCurrentIndex(0)
    assert [widget.defect_combo.itemData(i) for i in range(widget.defect_combo.count())] == [
        None, "", "hole", "scratch"]
    widget.defect_combo.setCurrentIndex(widget.defect_combo.findData("hole"))
    assert sorted(widget.proxy.paths()) == image_paths[23:25]
    widget.defect_combo.setCurrentIndex(0)
    assert not widget.review_check.isEnabled()  # no band yet
    widget.model.set_review_band(2.0, 2.5)
    assert widget.review_check.isEnabled()
    widget.review_check.setChecked(True)
    assert sorted(widget.proxy.paths()) == [image_paths[i] for i in (20, 21, 22, 23, 25, 26, 27, 28, 29)
                                            if 2.0 <= _score(i) < 2.5]
    widget.review_check.setChecked(False)
    widget.sort_combo.setCurrentIndex(widget.sort_combo.findText("Name"))
    assert widget.proxy.paths() == sorted(image_paths, key=lambda p: Path(p).name)
    widget.model.set_label(widget.model.row_of(image_paths[1]), "defect", "burr")  # new type is offered
    assert widget.defect_combo.findData("burr") >= 0


def _count_colour(image: QImage, colour: str) -> int:
    arr = np.frombuffer(image.constBits(), np.uint8).reshape(image.height(), image.bytesPerLine())
    arr = arr[:, : image.width() * 4].reshape(image.height(), image.width(), 4)
    c = QColor(colour)
    return int(np.sum((arr[:, :, 2] == c.red()) & (arr[:, :, 1] == c.green()) & (arr[:, :, 0] == c.blue())))


def test_badge_colour_follows_set_label(qtbot, widget: GalleryWidget, image_paths: list[str]):
    path = image_paths[13]  # unlabeled, score 1.3
    view = widget.view
    assert view.select_path(path) is True
    view.clearSelection()

    def tile() -> QImage:
        QApplication.processEvents()  # scrollTo and the repaint after dataChanged are deferred
        rect = view.visualRect(widget.proxy.index(widget.proxy.row_of(path), 0))
        assert view.viewport().rect().contains(rect)
        rect.setTop(rect.bottom() - 26)  # the badge line only: random-noise thumbnails hold every grey
        return view.viewport().grab(rect).toImage().convertToFormat(QImage.Format.Format_ARGB32)

    before = tile()
    assert _count_colour(before, LABEL_COLOURS["unlabeled"]) > 40
    assert _count_colour(before, LABEL_COLOURS["defect"]) == 0
    widget.model.set_label(widget.model.row_of(path), "defect", "scratch")
    after = tile()
    assert _count_colour(after, LABEL_COLOURS["defect"]) > 40
    assert _count_colour(after, LABEL_COLOURS["unlabeled"]) == 0


def test_visible_paths_start_at_first_tile(widget: GalleryWidget):
    assert widget.view.visible_paths()[0] == widget.proxy.paths()[0]
    assert widget.view.indexAt(QPoint(10, 10)).row() == 0


def test_filter_bar_wraps_instead_of_forcing_a_wide_window(qtbot, scored: GalleryModel):
    w = GalleryWidget(scored)
    qtbot.addWidget(w)
    assert w.minimumSizeHint().width() < 300  # fits a side dock
    w.resize(480, 400)
    w.show()
    qtbot.waitExposed(w)
    qtbot.waitUntil(lambda: w.split_combo.mapTo(w, QPoint()).y() > w.sort_combo.mapTo(w, QPoint()).y())
    assert w.width() == 480
    w.resize(1100, 400)
    qtbot.waitUntil(lambda: w.split_combo.mapTo(w, QPoint()).y() == w.sort_combo.mapTo(w, QPoint()).y())
