"""Export of labeled sets: folder layout, manifests, filters, atomic replace, and that no label text can make
the export write outside its target."""

from __future__ import annotations

import argparse
import csv
import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from core.cli.store_verbs import add_commands as add_store_verbs
from core.export import ExportCancelled, ExportError, ExportFilter, export_labeled, safe_name
from core.store import Store


def write_png(path: Path, value: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = np.full((9, 11), value % 256, np.uint8)
    img[1, 1] = (value * 13) % 256
    assert cv2.imwrite(str(path), img)
    return path


def tree(base: Path) -> set[str]:
    return {p.relative_to(base).as_posix() for p in base.rglob("*")}


@pytest.fixture
def project(tmp_path: Path):
    """8 images: good x2, defect/scratch with mask, defect/scratch without, defect without type,
    suspicious, unlabeled, and one in a second folder with a clashing file name."""
    root = tmp_path / "proj"
    for i in range(7):
        write_png(root / "imgs" / f"i{i}.png", 20 * i)
    write_png(root / "other" / "i0.png", 200)
    write_png(root / "gt" / "i2_mask.png", 255)
    s = Store.create(root / "review.h5", root)
    s.add_folder(root / "imgs")
    s.add_folder(root / "other")
    s.set_mask("imgs/i2.png", root / "gt" / "i2_mask.png")
    s.set_label("imgs/i0.png", "good", note="reference part")
    s.set_label("imgs/i1.png", "good")
    s.set_label("imgs/i2.png", "defect", defect_type="scratch", note="long one")
    s.set_label("imgs/i3.png", "defect", defect_type="scratch")
    s.set_label("imgs/i4.png", "defect")
    s.set_label("imgs/i5.png", "suspicious", defect_type="dent")
    s.set_label("other/i0.png", "good")
    run = s.add_run("vae", {}, {}, [f"imgs/i{i}.png" for i in range(6)],
                    {"M": np.array([0.1, 0.2, 0.9, 0.7, 0.8, 0.5]), "D": np.arange(6.0)}, "M")
    s.set_threshold(run, 0.4, 0.6, "f1-max")
    yield root, s, run
    s.close()


def test_layout_and_manifest(project, tmp_path: Path) -> None:
    root, s, run = project
    out = tmp_path / "export"
    res = export_labeled(s, out)
    assert tree(out) == {
        "good", "good/i0.png", "good/i1.png", "good/i0_2.png",
        "scratch", "scratch/i2.png", "scratch/i3.png", "defect", "defect/i4.png",
        "suspicious", "suspicious/i5.png", "masks", "masks/scratch", "masks/scratch/i2_mask.png",
        "manifest.csv", "manifest.json"}
    assert (res.n_images, res.n_masks) == (7, 1)
    assert res.counts == {"good": 3, "scratch": 2, "defect": 1, "suspicious": 1}
    assert (out / "scratch" / "i2.png").read_bytes() == (root / "imgs" / "i2.png").read_bytes()
    assert (out / "good" / "i0_2.png").read_bytes() == (root / "other" / "i0.png").read_bytes()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".export")]  # no temp folder left

    with open(out / "manifest.csv", newline="", encoding="utf-8") as fh:
        rows = {r["export_path"]: r for r in csv.DictReader(fh)}
    assert set(rows) == {p for p in tree(out) if p.endswith(".png") and not p.startswith("masks")}
    r = rows["scratch/i2.png"]
    assert (r["source_path"], r["label"], r["defect_type"], r["note"]) == ("imgs/i2.png", "defect", "scratch",
                                                                           "long one")
    assert (float(r["score"]), r["run"], r["component"]) == (0.9, run, "M")
    assert (float(r["threshold_t1"]), float(r["threshold_t2"]), r["threshold_method"]) == (0.4, 0.6, "f1-max")
    assert r["labeler"] == s.user and r["labeled_at"] == s.label("imgs/i2.png").time
    assert r["mask_path"] == "masks/scratch/i2_mask.png" and r["mask_source"] == "gt/i2_mask.png"
    assert rows["good/i0_2.png"]["score"] == "" and rows["good/i0_2.png"]["source_path"] == "other/i0.png"
    assert rows["suspicious/i5.png"]["defect_type"] == "dent"
    doc = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert doc["format"] == "anomaly-inspector-export" and doc["run"] == run
    items = {it["export_path"]: it for it in doc["items"]}
    assert items["good/i0.png"]["score"] == 0.1 and items["good/i0.png"]["note"] == "reference part"
    assert len(items) == 7


def test_filters(project, tmp_path: Path) -> None:
    _, s, run = project
    res = export_labeled(s, tmp_path / "a", ExportFilter(labels=("defect",), defect_types=("scratch",)))
    assert res.counts == {"scratch": 2}
    res = export_labeled(s, tmp_path / "b", ExportFilter(labels=("good", "defect", "suspicious"), run_id=run,
                                                         min_score=0.5, max_score=0.85))
    assert res.counts == {"scratch": 1, "defect": 1, "suspicious": 1}  # 0.7, 0.8, 0.5; 0.9 is above the band
    res = export_labeled(s, tmp_path / "c", ExportFilter(labels=("good",), run_id="latest"))
    assert res.counts == {"good": 2}  # other/i0.png was not scored by the run
    res = export_labeled(s, tmp_path / "d", ExportFilter(labels=("defect",), run_id=run, component="D",
                                                         min_score=3.5))
    assert res.counts == {"defect": 1}  # D = 4 for i4
    res = export_labeled(s, tmp_path / "e", ExportFilter(labels=("unlabeled",)))
    assert res.counts == {"unlabeled": 1} and (tmp_path / "e" / "unlabeled" / "i6.png").is_file()
    with pytest.raises(ExportError, match="needs a run"):
        export_labeled(s, tmp_path / "f", ExportFilter(min_score=0.1))
    with pytest.raises(ExportError, match="no score component"):
        export_labeled(s, tmp_path / "f", ExportFilter(run_id=run, component="Z"))
    with pytest.raises(ExportError, match="no run"):
        export_labeled(s, tmp_path / "f", ExportFilter(run_id="run-0099"))
    assert not (tmp_path / "f").exists()


@pytest.mark.parametrize("name, expected", [
    ("../../evil", "_.._evil"), ("/abs", "_abs"), ("CON", "_CON"), ("nul.txt", "_nul.txt"), ("com1", "_com1"),
    ("..", "_"), ("", "_"), ("  . ", "_"), ("a/b\\c", "a_b_c"), ("C:\\x", "C__x"), ("ok-name", "ok-name"),
    ("tab\there", "tab_here"), ("trailing. ", "trailing"), ("x" * 300, "x" * 120),
])
def test_safe_name(name: str, expected: str) -> None:
    assert safe_name(name) == expected


def test_hostile_defect_types_stay_inside_the_target(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    hostile = ["../../evil", "/abs", "CON", "..", ".", "a/../../b", "good", "masks", "nul", "x\x01y", "~",
               "/etc/passwd", "..\\..\\win"]
    for i in range(len(hostile)):
        write_png(root / f"img{i}.png", i)
    with Store.create(tmp_path / "s.h5", root) as s:
        s.add_folder(root)
        for i, dt in enumerate(hostile):
            s.set_label(f"img{i}.png", "defect", defect_type=dt)
        before = tree(tmp_path)
        out = tmp_path / "exp" / "out"
        res = export_labeled(s, out)
    assert res.n_images == len(hostile)
    created = tree(tmp_path) - before
    assert all(p == "exp" or p.startswith("exp/out") for p in created), created
    folders = {p.name for p in out.iterdir() if p.is_dir()}
    assert len(folders) == len(hostile)  # every defect type kept apart, none merged with good/ or masks/
    assert not folders & {"good", "masks", "..", ".", "CON", "nul", ""}
    for f in folders:
        assert f == safe_name(f) and not f.startswith(".")
    doc = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert {it["defect_type"] for it in doc["items"]} == set(hostile)  # the original text is in the manifest
    assert res.renamed_folders["../../evil"] == "_.._evil" and res.renamed_folders["good"] == "defect_good"


def test_existing_target_refused_overwrite_replaces(project, tmp_path: Path) -> None:
    _, s, _ = project
    out = tmp_path / "exp"
    export_labeled(s, out, ExportFilter(labels=("good",)))
    with pytest.raises(ExportError, match="already exists"):
        export_labeled(s, out, ExportFilter(labels=("defect",)))
    assert {p.name for p in out.iterdir()} == {"good", "manifest.csv", "manifest.json"}
    export_labeled(s, out, ExportFilter(labels=("defect",)), overwrite=True)
    assert {p.name for p in out.iterdir()} == {"scratch", "defect", "masks", "manifest.csv", "manifest.json"}
    precious = tmp_path / "thesis"
    precious.mkdir()
    (precious / "chapter1.tex").write_text("months of work")
    with pytest.raises(ExportError, match="not an earlier export"):
        export_labeled(s, precious, overwrite=True)
    assert (precious / "chapter1.tex").read_text() == "months of work"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exp", "proj", "thesis"]


def test_cancel_and_failure_leave_nothing(project, tmp_path: Path) -> None:
    _, s, _ = project
    calls = []
    with pytest.raises(ExportCancelled):
        export_labeled(s, tmp_path / "x", should_stop=lambda: len(calls) >= 2, progress=lambda d, t: calls.append(d))
    assert calls == [1, 2]

    def boom(done: int, total: int) -> None:
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError):
        export_labeled(s, tmp_path / "y", progress=boom)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["proj"]


def test_missing_source_file_is_reported_and_rest_exported(project, tmp_path: Path) -> None:
    root, s, _ = project
    os.remove(root / "imgs" / "i1.png")
    os.remove(root / "gt" / "i2_mask.png")
    res = export_labeled(s, tmp_path / "out")
    reasons = dict(res.skipped)
    assert "not found" in reasons[str(root / "imgs" / "i1.png")]
    assert "mask" in reasons[str(root / "gt" / "i2_mask.png")]
    assert res.n_images == 6 and res.n_masks == 0


def test_cli_export(project, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root, s, run = project
    s.close()  # the CLI opens the store itself

    def cli(argv: list[str]) -> int:
        parser = argparse.ArgumentParser()
        add_store_verbs(parser.add_subparsers())
        args = parser.parse_args(argv)
        return args.func(args)

    out = tmp_path / "cli-out"
    store = str(root / "review.h5")
    assert cli(["export", store, "--out", str(out), "--label", "defect", "--run", run, "--min-score", "0.75"]) == 0
    assert "exported 2 images and 1 masks" in capsys.readouterr().out
    assert tree(out) >= {"scratch/i2.png", "defect/i4.png", "masks/scratch/i2_mask.png"}
    assert cli(["export", store, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(out) in err[0] and "already exists" in err[0]
    assert cli(["export", store, "--out", str(out), "--overwrite", "--defect-type", "dent",
                "--label", "suspicious"]) == 0
    assert tree(out) == {"suspicious", "suspicious/i5.png", "manifest.csv", "manifest.json"}
    with Store.open(store):  # a window holds the store for writing: export still reads it
        assert cli(["export", store, "--out", str(tmp_path / "while-open"), "--label", "good"]) == 0
    assert (tmp_path / "while-open" / "good" / "i1.png").is_file()
