"""Aspect-preserving resize and native-resolution tiling in the feature detectors: a small defect on a large
frame must survive, maps must lie on the frame, and a long thin image must not be squashed."""

from __future__ import annotations

import numpy as np
import pytest

from core import metrics
from core.detectors.features.tiling import TileLayout, TrainingTiles, starts
from core.detectors.registry import create


def surface(seed: int, h: int = 192, w: int = 256, defect: bool = False) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = 0.5 + 0.03 * rng.standard_normal((h, w, 1)).astype(np.float32)
    img += 0.05 * np.sin(np.arange(w, dtype=np.float32) * 0.9)[None, :, None]
    if defect:
        y, x = int(rng.integers(20, h - 20)), int(rng.integers(20, w - 20))
        img[y:y + 3, x:x + 3] = 0.2  # a 3 px pit
    return np.clip(img, 0, 1).astype(np.float32)


def test_tiles_cover_the_frame_and_stitch_back_in_place():
    assert starts(100, 64, 16) == [0, 36]
    assert starts(64, 64, 16) == [0] and starts(30, 64, 16) == [0]
    layout = TileLayout.of((100, 150), 64, 16)
    assert len(layout) == 2 * 3
    covered = np.zeros((100, 150), bool)
    for y, x in layout.origins:
        covered[y:y + 64, x:x + 64] = True
    assert covered.all()
    maps = [np.zeros((64, 64), np.float32) for _ in layout.origins]
    y, x = layout.origins[-1]
    maps[-1][60, 60] = 5.0  # frame pixel (y + 60, x + 60)
    stitched = layout.stitch(maps)
    assert stitched.shape == (100, 150)
    assert np.unravel_index(np.argmax(stitched), stitched.shape) == (y + 60, x + 60)
    # Small frames are padded, every tile has the tile size.
    small = TileLayout.of((30, 40), 64, 16)
    assert [t.shape for t in small.cut(np.zeros((30, 40, 1), np.float32))] == [(64, 64, 1)]


def test_training_tiles_decode_each_frame_once():
    reads: list[int] = []

    class Frames(list):
        def __getitem__(self, i):
            reads.append(i)
            return super().__getitem__(i)

    frames = Frames([surface(i, 100, 150) for i in range(3)])
    tiles = TrainingTiles(frames, TileLayout.of((100, 150), 64, 16))
    assert len(tiles) == 18
    got = tiles[0:18]
    assert len(got) == 18 and all(t.shape == (64, 64, 1) for t in got)
    assert reads == [0, 1, 2]


def test_pad_keeps_the_aspect_of_a_long_thin_image():
    det = create("padim", image_size=64, batch_size=4, resize="pad")
    thin = [surface(i, 32, 128) for i in range(4)]
    det.fit(thin)
    res = det.score(thin[:2])
    assert res.maps["score"][0].shape == (16, 64)  # 1:4 kept (a square resize would give 64 x 64)
    assert res.geometry[0].input_shape == (16, 64) and res.geometry[0].original_shape == (32, 128)


@pytest.mark.parametrize("name", ["padim", "patchcore"])
def test_tiling_finds_a_3px_defect_that_a_square_resize_loses(name):
    # 256 x 384 frames, 64 px tiles: squashed to 64 x 64 the pit is under a pixel.
    train = [surface(100 + i, 256, 384) for i in range(6)]
    test = [surface(200 + i, 256, 384) for i in range(6)] + [surface(300 + i, 256, 384, True) for i in range(6)]
    labels = np.array([0] * 6 + [1] * 6, bool)
    extra = {"max_pool": 4000} if name == "patchcore" else {}
    tiled = create(name, image_size=64, batch_size=8, resize="tile", tile_overlap=16, **extra)
    tiled.fit(train)
    assert tiled.metadata["tiles_per_frame"] == 5 * 8
    res = tiled.score(test)
    assert metrics.auroc(labels, res.scores) == 1.0
    assert res.maps["score"][0].shape == (256, 384) and res.geometry[0].original_shape == (256, 384)
    squashed = create(name, image_size=64, batch_size=8, **extra)
    squashed.fit(train)
    assert metrics.auroc(labels, squashed.score(test).scores) < 0.9
    assert tiled.input_side() is None and squashed.input_side() == 64
