"""Hostile and odd files (tests/hostile_corpus.py) through every loader: the decoder, `evaluate`, `train`,
`score`, the store's add_folder and MVTec import. No traceback, every unreadable file named exactly once,
every readable one used."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from core.cli import main
from core.data.folders import scan_folder
from core.data.images import (
    DEFAULT_MAX_PIXELS,
    MAX_PIXELS_ENV,
    ImageLoadError,
    check_image,
    decode_image,
    folder_entries,
    max_pixels,
    parse_pixels,
    set_max_pixels,
)
from core.store import Store
from tests.conftest import write_png
from tests.hostile_corpus import Case, png_bomb, readable, restore_permissions, unreadable, write_corpus

# A detector that fits and scores in milliseconds on any image size and channel count (resizes to 16 px).
FAST = ["--detector", "kde", "--set", "image_size=16", "--set", "pca_dims=2,4"]


@pytest.fixture
def corpus(tmp_path: Path) -> Iterator[tuple[Path, list[Case]]]:
    folder = tmp_path / "corpus"
    cases = write_corpus(folder)
    yield folder, cases
    restore_permissions(folder)


@pytest.fixture(autouse=True)
def _default_limit(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv(MAX_PIXELS_ENV, raising=False)
    set_max_pixels(None)
    yield
    set_max_pixels(None)


def _mvtec_with_corpus(tiny_demo: Path, tmp_path: Path) -> tuple[Path, list[Path], list[Path]]:
    """The tiny demo set plus the corpus twice: among the training images and as a test class `odd`."""
    data = tmp_path / "mvtec"
    shutil.copytree(tiny_demo, data)
    good, bad = [], []
    for where in (data / "train" / "good", data / "test" / "odd"):
        cases = write_corpus(where)
        good += [where / c.name for c in readable(cases)]
        bad += [where / c.name for c in unreadable(cases)]
    return data, good, bad


def _named_once(err: str, bad: list[Path]) -> None:
    for path in bad:
        assert err.count(f"skipped {path}: ") == 1, (path, err)
    assert err.count("skipped /") == len(bad), err  # and no other file is named as skipped
    assert "Traceback" not in err


# ---------------------------------------------------------------- the decoder
def test_corpus_has_forty_cases_and_each_decodes_as_promised(corpus):
    folder, cases = corpus
    assert len(cases) >= 40 and len(unreadable(cases)) >= 15 and len(readable(cases)) >= 20
    for case in cases:
        path = folder / case.name
        if case.expect == "ignored":
            continue
        if case.expect == "readable":
            img = decode_image(path)
            assert img.dtype == np.float32 and img.ndim == 3 and img.shape[2] in (1, 3), case
            assert np.isfinite(img).all() and img.min() >= 0.0 and img.max() <= 1.0, case
            if case.shape:
                assert img.shape == case.shape, case
            check_image(path)
            assert decode_image(path, max_side=8).shape[:2] <= (8, 8) or max(img.shape[:2]) <= 8
        else:
            for decode in (decode_image, check_image):
                with pytest.raises(ImageLoadError) as info:
                    decode(path)
                assert info.value.path == str(path) and case.reason in info.value.reason, (case, info.value)
                assert str(info.value).startswith(f"{path}: ")


def test_listing_leaves_out_hidden_files_and_folders_but_keeps_broken_links(corpus):
    folder, cases = corpus
    listed = {p.name for p in folder_entries(folder)}
    assert listed == {c.name for c in cases if c.expect != "ignored"}
    assert {p.name for p in folder_entries(folder, recursive=True, images_only=True)} == listed


def test_special_values_are_cleaned(corpus):
    folder, _ = corpus
    img = decode_image(folder / "float_nan_inf.tif")[:, :, 0]
    assert img[0, 0] == 0.0 and img[0, 1] == 1.0 and img[0, 2] == 0.0  # NaN -> 0, +inf -> top, -inf -> bottom
    assert img[-1, -1] == pytest.approx(1.0) and np.all(np.diff(img.ravel()[3:]) >= 0)
    deep = decode_image(folder / "gray16.png")
    assert len(np.unique(deep)) > 100  # 16-bit values, not an 8-bit copy


def test_60000_square_png_header_is_refused_by_name_without_allocating(tmp_path):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_bomb(60000, 60000))
    t0 = time.perf_counter()
    with pytest.raises(ImageLoadError, match=r"bomb.png: header says 60000 x 60000 = 3600 MP, over the 256 MP"):
        decode_image(bomb)
    assert time.perf_counter() - t0 < 1.0


def test_pixel_limit_setting(tmp_path, monkeypatch):
    img = write_png(tmp_path / "a.png", np.zeros((40, 50), np.uint8))
    assert max_pixels() == DEFAULT_MAX_PIXELS == 256_000_000
    assert parse_pixels("400M") == parse_pixels("400MP") == parse_pixels("4e8") == 400_000_000
    with pytest.raises(ValueError, match="not a number"):
        parse_pixels("lots")
    monkeypatch.setenv(MAX_PIXELS_ENV, "1000")
    with pytest.raises(ImageLoadError, match="50 x 40 = 2000 pixels, over the 1000 pixels limit"):
        decode_image(img)
    set_max_pixels(2000)  # --max-pixels wins over the environment
    assert decode_image(img).shape == (40, 50, 1)
    assert decode_image(img, max_pixels=10_000).shape == (40, 50, 1)
    set_max_pixels(None)
    monkeypatch.setenv(MAX_PIXELS_ENV, "many")
    with pytest.raises(ValueError, match=MAX_PIXELS_ENV):
        max_pixels()


def test_camera_frames_are_under_the_default_limit(tmp_path):
    """A 25 MP frame loads (libpng fills the rows this file leaves out with zeros); 24 MP JPEGs likewise."""
    frame = tmp_path / "frame.png"
    frame.write_bytes(png_bomb(6000, 4200))
    check_image(frame)
    assert decode_image(frame, max_side=96).shape == (67, 96, 1)


def test_decoder_failures_of_every_kind_become_named_skips(tmp_path, monkeypatch):
    import core.data.images as images

    path = write_png(tmp_path / "frame.png", np.zeros((8, 8), np.uint8))
    failures = {
        "over OpenCV's pixel limit": cv2.error("(-215:Assertion failed) pixels <= CV_IO_MAX_IMAGE_PIXELS in "
                                               "function 'validateInputImageSize'"),
        "out of memory": MemoryError(),
        "corrupt": RuntimeError("a decoder bug"),
    }
    for reason, exc in failures.items():
        def failing(*_args, exc=exc):
            raise exc

        monkeypatch.setattr(images.cv2, "imdecode", failing)
        monkeypatch.setattr(images, "_pillow", lambda *_args: None)
        with pytest.raises(ImageLoadError, match=f"frame.png: .*{reason}"):
            decode_image(path)
    monkeypatch.undo()
    monkeypatch.setattr(images.os, "access", lambda *_args: False)  # root reads 0o000 files; pretend
    with pytest.raises(ImageLoadError, match="frame.png: unreadable: permission denied"):
        decode_image(path)


def test_bad_pixel_limit_on_the_command_line_is_one_line(tiny_demo, capsys):
    with pytest.raises(SystemExit) as info:
        main(["evaluate", str(tiny_demo), *FAST, "--max-pixels", "lots"])
    assert info.value.code == 2 and "--max-pixels: pixel limit 'lots' is not a number" in capsys.readouterr().err


# ---------------------------------------------------------------- the command line
def test_evaluate_on_an_mvtec_folder_with_the_corpus(tiny_demo, tmp_path, capsys):
    data, good, bad = _mvtec_with_corpus(tiny_demo, tmp_path)
    report = tmp_path / "r.json"
    assert main(["evaluate", str(data), *FAST, "--report", str(report)]) == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err
    _named_once(err, bad)
    assert f"{len(bad)} file(s) skipped" in err
    r = json.loads(report.read_text())
    n_readable = len(good) // 2
    assert r["n_train"] == 12 + n_readable and r["n_test"] == 10 + n_readable
    assert sorted(r["skipped_files"]) == sorted(f"skipped {p}: " + decode_reason(p) for p in bad)


def decode_reason(path: Path) -> str:
    with pytest.raises(ImageLoadError) as info:
        decode_image(path)
    return info.value.reason


def test_evaluate_on_a_folder_layout_names_each_file_once(tiny_demo, tmp_path, capsys):
    """Folder layout: a seeded share of good/ is held out for judging, the rest trains; a broken file is named
    once whichever set it falls in."""
    data = tmp_path / "folder"
    shutil.copytree(tiny_demo / "train" / "good", data / "good")
    for defect in ("scratch", "blowhole"):
        shutil.copytree(tiny_demo / "test" / defect, data / defect)
    cases = write_corpus(data / "good")
    bad = [data / "good" / c.name for c in unreadable(cases)]
    report = tmp_path / "r.json"
    assert main(["evaluate", str(data), *FAST, "--report", str(report)]) == 0
    err = capsys.readouterr().err
    _named_once(err, bad)
    r = json.loads(report.read_text())
    good_judged = r["n_test"] - r["n_test_defect"]
    assert r["n_test_defect"] == 4 and r["n_train"] + good_judged == 12 + len(readable(cases))
    assert 0 < good_judged < r["n_train"]  # the 20 % hold-out, never the training images
    assert len(r["skipped_files"]) == len(bad)


def test_train_and_score_skip_by_name_and_score_every_readable_file(tiny_demo, tmp_path, capsys):
    data, good, bad = _mvtec_with_corpus(tiny_demo, tmp_path)
    model = tmp_path / "m.ai"
    assert main(["train", str(data), *FAST, "--out", str(model)]) == 0
    err = capsys.readouterr().err
    _named_once(err, [p for p in bad if "train" in p.parts])
    out = tmp_path / "scores.json"
    assert main(["score", str(data), "--model", str(model), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    _named_once(err, bad)
    scored = json.loads(out.read_text())
    paths = {row["path"] for row in scored["images"]}
    assert {str(p) for p in good} <= paths and len(paths) == 22 + len(good)
    assert all(np.isfinite(row["score"]) for row in scored["images"])
    assert len(scored["skipped_files"]) == len(bad)


def test_score_a_flat_folder_of_hostile_files(tiny_demo, tmp_path, capsys, corpus):
    folder, cases = corpus
    model = tmp_path / "m.ai"
    assert main(["train", str(tiny_demo), *FAST, "--out", str(model)]) == 0
    out = tmp_path / "scores.csv"
    assert main(["score", str(folder), "--model", str(model), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    _named_once(err, [folder / c.name for c in unreadable(cases)])
    rows = out.read_text(encoding="utf-8").splitlines()[1:]
    assert len(rows) == len(readable(cases))


def test_max_pixels_option_and_a_broken_mask(tiny_demo, tmp_path, capsys):
    data = tmp_path / "data"
    shutil.copytree(tiny_demo, data)
    mask = next((data / "ground_truth" / "scratch").iterdir())
    mask.write_text("<html>404</html>")
    (data / "test" / "good" / "bomb.png").write_bytes(png_bomb(60000, 60000))
    report = tmp_path / "r.json"
    assert main(["evaluate", str(data), *FAST, "--report", str(report), "--max-pixels", "5000"]) == 0
    err = capsys.readouterr().err
    assert f"skipped mask {mask}: not an image (HTML text)" in err
    assert err.count(str(data / "test" / "good" / "bomb.png")) == 1
    r = json.loads(report.read_text())
    assert r["n_train"] == 12 and "pixel_auroc" not in r  # 64 x 64 = 4096 pixels: under the limit
    assert main(["evaluate", str(data), *FAST, "--max-pixels", "4000"]) == 2  # now nothing is left to train on
    assert "0 images labeled good and marked for training" in capsys.readouterr().err


# ---------------------------------------------------------------- the store
def test_store_add_folder_skips_each_hostile_file_once(corpus, tmp_path):
    folder, cases = corpus
    with Store.create(tmp_path / "p.h5", tmp_path) as store:
        res = store.add_folder(folder)
        skipped = [p for p, _ in res.skipped]
        assert sorted(skipped) == sorted(str(folder / c.name) for c in unreadable(cases))
        assert res.added == len(readable(cases))
        reasons = dict(res.skipped)
        assert "60000 x 60000" in reasons[str(folder / "bomb_60000.png")]
        assert "broken symbolic link" in reasons[str(folder / "dangling_link.png")]
        assert {Path(r.path).name for r in store.images()} == {c.name for c in readable(cases)}


def test_store_can_keep_undecodable_files_for_the_window(corpus, tmp_path):
    """The window keeps them (shown as broken tiles with their reason); files that are not there are skipped."""
    folder, cases = corpus
    with Store.create(tmp_path / "p.h5", tmp_path) as store:
        res = store.add_folder(folder, check_images=False)
        gone = {"dangling_link.png", "loop_link.png", "pipe.png"} | {c.name for c in cases if "permission" in c.reason}
        assert {Path(p).name for p, _ in res.skipped} == gone
        assert res.added == len(readable(cases)) + len(unreadable(cases)) - len(gone)


def test_store_mvtec_import_skips_hostile_files(tiny_demo, tmp_path, capsys):
    data, good, bad = _mvtec_with_corpus(tiny_demo, tmp_path)
    with Store.create(tmp_path / "gt.h5", tmp_path) as store:
        res = store.import_mvtec(data)
        assert sorted(p for p, _ in res.skipped) == sorted(str(p) for p in bad)
        assert res.added == 22 + len(good)
    assert main(["import-gt", str(tmp_path / "gt2.h5"), str(data)]) == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err and "skipped: " in err


def test_scan_folder_lists_each_entry_once(corpus):
    folder, cases = corpus
    scanned = scan_folder(folder)
    assert sorted(Path(it.path).name for it in scanned.items) == sorted(
        c.name for c in cases if c.expect != "ignored" and Path(c.name).suffix.lower() != "")
