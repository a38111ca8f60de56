"""Streaming: images are decoded on demand (reduced to what the detector needs), scoring runs in chunks, and
peak memory does not grow with the number of images."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import cv2
import numpy as np
import pytest

from core.data.folders import ImageItem
from core.data.image_source import ImageSource, decode_for, image_shape
from core.data.images import decode_image
from core.detectors.errors import Cancelled
from core.detectors.registry import create
from core.evaluate import SCORE_CHUNK, score_in_chunks


def write_frames(folder: Path, n: int, size: tuple[int, int] = (96, 128), suffix: str = ".jpg") -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for k in range(n):
        img = np.full((*size, 3), 120, np.uint8) + rng.integers(0, 20, (*size, 3), dtype=np.uint8)
        if k % 7 == 3:  # a bright pit now and then: something to score
            cv2.circle(img, (size[1] // 2, size[0] // 2), 6, (255, 255, 255), -1)
        path = folder / f"f{k:04d}{suffix}"
        assert cv2.imwrite(str(path), img)
        paths.append(path)
    return paths


def test_decoding_is_lazy_and_cached_within_its_budget(tmp_path):
    paths = write_frames(tmp_path, 10)
    src = ImageSource(paths, cache_bytes=3 * 96 * 128 * 3 * 4)  # room for three decoded frames
    assert len(src) == 10 and src.decoded == 0  # nothing decoded until asked
    first = src[0]
    assert src[0] is first and src.decoded == 1  # a hit
    assert [img.shape for img in src[2:6]] == [(96, 128, 3)] * 4 and src.decoded == 5
    assert src._cached_bytes <= src.cache_bytes and len(src._cache) == 3
    assert len(list(src)) == 10
    np.testing.assert_array_equal(src[9], decode_image(paths[9]))  # the same pixels as a plain decode


def test_jpegs_are_decoded_reduced_to_the_side_the_detector_needs(tmp_path):
    (path,) = write_frames(tmp_path, 1, size=(480, 640))
    full = decode_for(path)
    reduced = decode_for(path, min_side=100)
    assert full.shape == (480, 640, 3) and min(reduced.shape[:2]) == 100  # decoded at 1/4, then shrunk to 100
    assert abs(reduced.shape[1] - 640 * 100 / 480) <= 1  # aspect ratio kept
    assert image_shape(path) == (480, 640)
    png = tmp_path / "x.png"
    cv2.imwrite(str(png), np.zeros((300, 200), np.uint8))
    assert decode_for(png, min_side=50).shape == (75, 50, 1)  # other formats: decoded, then shrunk once
    assert decode_for(path, min_side=1000).shape == (480, 640, 3)  # never enlarged


def test_unreadable_files_are_named_and_left_out(tmp_path):
    paths = write_frames(tmp_path, 4)
    (tmp_path / "bad.jpg").write_bytes(b"<html>not a jpeg</html>")
    src, skipped = ImageSource([*paths[:2], tmp_path / "bad.jpg", *paths[2:]]).readable()
    assert len(src) == 4 and [Path(s.path).name for s in skipped] == ["bad.jpg"]
    assert src.decoded == 0 or len(src._cache) == 4  # the decodes done to find it are kept for training


def _items(paths: list[Path]) -> list[ImageItem]:
    return [ImageItem(str(p), "test", "unknown") for p in paths]


def test_chunked_scores_equal_whole_batch_scores(tmp_path):
    paths = write_frames(tmp_path, 12)
    det = create("gmm", image_size=32, patch_size=16, stride=8)
    det.fit([decode_for(p, det.input_side()) for p in paths[:8]])
    whole = det.score([decode_for(p, det.input_side()) for p in paths])
    chunked = score_in_chunks(det, _items(paths), chunk=5, log=lambda m: None)
    np.testing.assert_allclose(chunked.result.scores, whole.scores, rtol=1e-6)
    assert [it.path for it in chunked.scored.items] == [str(p) for p in paths]
    # Maps lie on the file's own resolution even though it was decoded reduced.
    assert {g.original_shape for g in chunked.result.geometry} == {(96, 128)}


def test_a_bad_file_in_a_chunk_is_skipped_by_name_and_cancel_stops(tmp_path):
    paths = write_frames(tmp_path, 6)
    (tmp_path / "zero.jpg").write_bytes(b"")
    det = create("gmm", image_size=32, patch_size=16, stride=8)
    det.fit([decode_for(p, 32) for p in paths])
    logged: list[str] = []
    out = score_in_chunks(det, _items([paths[0], tmp_path / "zero.jpg", *paths[1:]]), chunk=4, log=logged.append)
    assert len(out.result) == 6 and len(out.scored.skipped) == 1 and "zero.jpg" in logged[0]
    with pytest.raises(Cancelled):
        score_in_chunks(det, _items(paths), chunk=2, should_stop=lambda: True, log=lambda m: None)


def test_peak_memory_of_scoring_does_not_grow_with_the_number_of_images(tmp_path):
    side = 256  # a decoded frame: 256 x 256 x 3 float32 = 0.75 MB
    paths = write_frames(tmp_path, 4 * SCORE_CHUNK, size=(side, side), suffix=".png")
    det = create("gmm", image_size=None, patch_size=32, stride=32)
    det.fit([decode_image(p) for p in paths[:6]])

    def peak(n: int) -> int:
        tracemalloc.start()
        score_in_chunks(det, _items(paths[:n]), log=lambda m: None)
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return top

    small, large = peak(SCORE_CHUNK), peak(4 * SCORE_CHUNK)
    frame = side * side * 3 * 4
    assert large < 1.3 * small + 2 * frame, (small, large)
    assert large < 0.75 * 4 * SCORE_CHUNK * frame  # below holding every decoded image at once


# ---------------------------------------------------------------- runs that grow chunk by chunk, and resume
def _scored_project(tmp_path: Path, n: int = 10):
    from core.project import store_items
    from core.project.opening import open_project

    paths = write_frames(tmp_path / "day", n)
    det = create("gmm", image_size=32, patch_size=16, stride=8)
    det.fit([decode_for(p, 32) for p in paths[:6]])
    store = open_project(tmp_path / "day")
    return det, store, store_items(store)


def test_a_growing_run_is_on_disk_chunk_by_chunk_and_resumes_where_it_stopped(tmp_path):
    from core.evaluate import score_into_store
    from core.store import Store

    det, store, items = _scored_project(tmp_path)
    calls = {"n": 0}

    def stop_after_two_chunks() -> bool:
        return calls["n"] >= 2

    def count(run_id, chunk_items, part):
        calls["n"] += 1

    with pytest.raises(Cancelled):
        score_into_store(store, det, items, chunk=3, should_stop=stop_after_two_chunks, on_chunk=count,
                         log=lambda m: None)
    (info,) = store.list_runs()
    assert not info.complete and info.n_images == 6  # two chunks of three were kept
    path = store.path
    store.close()
    with Store.open(path) as store:  # reopened for writing: an incomplete run is kept, not cleaned up
        assert store.run_info(info.run_id).n_images == 6
        seen: list[int] = []
        run = score_into_store(store, det, items, run_id=info.run_id, chunk=3,
                               on_chunk=lambda r, chunk_items, part: seen.extend(
                                   store.image_id(it.path) for it in chunk_items), log=lambda m: None)
        assert run == info.run_id and len(seen) == 4  # only what was missing
        done = store.run_info(run)
        assert done.complete and done.n_images == 10 and set(done.metadata["map_ranges"]) == set(det.components)
        whole = det.score([decode_for(it.path, 32) for it in items])
        np.testing.assert_allclose(store.scores(run)[[store.image_id(it.path) for it in items]], whole.scores,
                                   rtol=1e-5)  # batches of another size: float32 sums in another order
        comp = det.default_component
        assert store.maps(run, items[9].path)[comp].shape == whole.maps[comp][9].shape
        with pytest.raises(Exception, match="complete"):
            score_into_store(store, det, items, run_id=run, log=lambda m: None)


def test_append_refuses_an_image_twice(tmp_path):
    from core.store import StoreError

    det, store, items = _scored_project(tmp_path, 4)
    with store:
        run = store.begin_run("gmm", {}, {}, "M", ["M"])
        assert store.append_to_run(run, [items[0].path], {"M": np.array([1.0])}) == 1
        with pytest.raises(ValueError, match="already scored"):
            store.append_to_run(run, [items[0].path], {"M": np.array([2.0])})
        store.finish_run(run)
        with pytest.raises(StoreError, match="complete"):
            store.append_to_run(run, [items[1].path], {"M": np.array([2.0])})


def test_score_verb_into_the_project_and_resume(tmp_path, capsys):
    from core.cli import main
    from core.project import project_store_path
    from core.store import Store

    det, store, items = _scored_project(tmp_path, 8)
    store.close()
    model = tmp_path / "m.ai"
    det.save(model)
    assert main(["score", str(tmp_path / "day"), "--model", str(model)]) == 0
    assert "scored 8 images with gmm into" in capsys.readouterr().out
    # A new day's folder into the same project: its images are added and scored, the old run stays.
    new_day = tmp_path / "day" / "next"
    write_frames(new_day, 3)
    store_path = project_store_path(tmp_path / "day")
    assert main(["score", str(new_day), "--model", str(model), "--store", str(store_path)]) == 0
    with Store.open(store_path, readonly=True) as s:
        runs = s.list_runs()
        assert [r.n_images for r in runs] == [8, 3] and all(r.complete for r in runs)
    assert main(["score", str(new_day), "--model", str(model), "--store", str(store_path),
                 "--resume", "latest"]) == 0  # nothing incomplete: a fresh run


# ---------------------------------------------------------------- pixel metrics of long runs
def test_spooled_pixel_metrics_match_the_exact_ones_and_hold_no_maps(tmp_path):
    """evaluate spools maps at mask size to disk while scoring (core.pixel_eval): the figures agree with the exact
    pixel AUROC / PRO over in-memory maps, and the spool keeps nothing per image in memory but a value sample."""
    from core.detectors.results import MapGeometry, pixel_map
    from core.metrics import pixel_auroc, pro_score
    from core.pixel_eval import PixelMapSpool, pixel_metrics
    from tests.conftest import write_png

    rng = np.random.default_rng(5)
    items, maps, geoms, masks = [], [], [], []
    for k in range(40):
        path = write_png(tmp_path / f"f{k}.png", np.zeros((96, 128), np.uint8))
        mask = np.zeros((96, 128), bool)
        mask_path = None
        if k % 3 == 0:
            y, x = rng.integers(10, 60), rng.integers(10, 90)
            mask[y:y + 16, x:x + 20] = True
            mask_path = write_png(tmp_path / f"f{k}_mask.png", mask.astype(np.uint8) * 255)
        grid = rng.random((12, 16)).astype(np.float32)
        geom = MapGeometry((96, 128), (96, 128), 8, 8)
        grid[np.unique(np.nonzero(mask)[0] // 8)[:, None], np.unique(np.nonzero(mask)[1] // 8)] += 0.7
        items.append(ImageItem(str(path), "test", "defect" if mask_path else "good",
                               mask_path=str(mask_path) if mask_path else None))
        maps.append(grid)
        geoms.append(geom)
        masks.append(mask)
    spool = PixelMapSpool()
    for start in range(0, 40, 16):  # three chunks, as evaluate adds them
        spool.add({"score": maps[start:start + 16]}, geoms[start:start + 16], items[start:start + 16])
    got = pixel_metrics(spool, items, log=lambda m: None)
    spool.close()
    dense = [pixel_map(m, g) for m, g in zip(maps, geoms, strict=True)]
    assert abs(got["pixel_auroc"]["score"] - pixel_auroc(masks, dense)) < 2e-3
    assert abs(got["pixel_pro"]["score"] - pro_score(masks, dense)) < 5e-3
    assert got["pixel_auroc"]["score"] > 0.8  # the hot patches are where the masks are


def test_large_pixel_maps_are_stored_bounded_and_still_cover_their_image():
    from core.detectors.results import MapGeometry, pixel_map
    from core.evaluate import STORED_MAP_SIDE, bounded_maps
    from inspector_gui.viewer_maps import patch_cell

    full = np.zeros((1024, 1280), np.float32)
    full[500:540, 900:960] = 1.0  # a hot region at native resolution
    pixel = MapGeometry((1024, 1280), (1024, 1280), 1, 1)
    grid = MapGeometry((224, 224), (1024, 1280), 8, 8)
    small = np.ones((28, 28), np.float32)
    out = bounded_maps({"m": [full, small]}, [pixel, grid])
    stored, untouched = out["m"]
    assert max(stored.shape) == STORED_MAP_SIDE and stored.shape == (205, 256)  # aspect kept
    assert untouched is small  # patch grids are small already
    shown = pixel_map(stored, pixel)  # stretched back over the image when shown
    assert shown.shape == (1024, 1280) and shown[520, 930] > 0.5 and shown[100, 100] == 0
    i, j = patch_cell(930, 520, stored.shape, pixel)  # hovering the hot pixel reads the hot stored cell
    assert stored[i, j] > 0.5
