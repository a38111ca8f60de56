"""Gallery thumbnails of the hostile corpus (tests/hostile_corpus.py), offscreen: a file that cannot be shown
becomes a broken tile with its reason in the tooltip, never an exception in a worker thread; every readable
file gets its thumbnail."""

from __future__ import annotations

import re
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage

from core.data.images import ImageLoadError, folder_entries
from inspector_gui.gallery import GalleryModel, GalleryRole, decode_thumbnail
from tests.hostile_corpus import readable, restore_permissions, unreadable, write_corpus


@pytest.fixture
def corpus(tmp_path: Path):
    folder = tmp_path / "corpus"
    cases = write_corpus(folder)
    yield folder, cases
    restore_permissions(folder)


def test_decode_thumbnail_on_every_case(corpus):
    folder, cases = corpus
    for case in readable(cases):
        image = decode_thumbnail(str(folder / case.name), 24)
        assert isinstance(image, QImage) and not image.isNull(), case
        assert max(image.width(), image.height()) <= 24
        if case.shape:  # aspect kept, EXIF rotation applied
            h, w = case.shape[:2]
            assert (image.width() >= image.height()) == (w >= h), case
    for case in unreadable(cases):
        with pytest.raises(ImageLoadError, match=re.escape(case.reason) if case.reason else None):
            decode_thumbnail(str(folder / case.name), 24)


def test_gallery_shows_broken_tiles_with_reasons_and_every_readable_thumbnail(qtbot, corpus):
    folder, cases = corpus
    paths = [str(p) for p in folder_entries(folder)]
    model = GalleryModel(threads=2)
    try:
        model.set_items(paths)
        for row in range(model.rowCount()):
            model.index(row, 0).data(Qt.ItemDataRole.DecorationRole)  # painting asks: schedules the decode
        qtbot.waitUntil(lambda: all(model.thumbnail_state(p) in ("ready", "broken") for p in paths), timeout=10000)
        for case in readable(cases):
            assert model.thumbnail_state(str(folder / case.name)) == "ready", case
        for case in unreadable(cases):
            path = str(folder / case.name)
            assert model.thumbnail_state(path) == "broken", case
            row = model.row_of(path)
            error = model.index(row, 0).data(GalleryRole.ErrorRole.value)
            assert case.name in error and case.reason in error, (case, error)
            tip = model.index(row, 0).data(Qt.ItemDataRole.ToolTipRole)
            assert tip.startswith(f"Cannot show this image: {error.removeprefix(path + ': ')}\n{path}\n")
            tile = model.index(row, 0).data(Qt.ItemDataRole.DecorationRole)
            assert isinstance(tile, QImage) and not tile.isNull()
        assert model.loader.decoded_count == len(paths)
    finally:
        model.shutdown()


def test_big_camera_frame_thumbnail_is_quick(tmp_path: Path):
    """A 24 MP JPEG is decoded at 1/8 scale for a 96 px tile: well under the time of a full decode."""
    rng = np.random.default_rng(0)
    frame = cv2.resize(rng.integers(0, 255, (100, 150, 3), dtype=np.uint8), (6000, 4000))
    path = tmp_path / "frame.jpg"
    Image.fromarray(frame).save(path, quality=80)
    t0 = time.perf_counter()
    image = decode_thumbnail(str(path), 96)
    quick = time.perf_counter() - t0
    assert (image.width(), image.height()) == (96, 64)
    assert quick < 1.0
