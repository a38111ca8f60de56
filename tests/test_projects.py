"""Projects, not folders: which images train and which are judged, for each layout and for a bare store,
through the engine, the command line and the store (the window's side is in test_app_e2e)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from core.cli import main
from core.data.folders import scan_folder
from core.evaluate import evaluate
from core.project import (
    TooFewTrainingImages,
    held_out,
    image_sets,
    project_store_path,
    role,
    sets_from_folder,
    sets_from_store,
)
from core.project.opening import open_project
from core.store import Store
from tests.conftest import write_png

FAST = {"image_size": 32}  # gmm on 32 px images: a real detector that fits in well under a second


def folder_layout(tiny_demo: Path, dest: Path) -> Path:
    """The tiny demo rewritten in the anomalib Folder layout: good/ (all 16 good images), <defect>/, masks/."""
    for split in ("train", "test"):
        for sub in sorted((tiny_demo / split).iterdir()):
            for img in sorted(sub.glob("*.png")):
                name = f"{split}_{img.name}" if sub.name == "good" else img.name
                (dest / sub.name).mkdir(parents=True, exist_ok=True)
                shutil.copy(img, dest / sub.name / name)
    for sub in (tiny_demo / "ground_truth").iterdir():
        shutil.copytree(sub, dest / "masks" / sub.name)
    return dest


def flat_folder(tiny_demo: Path, dest: Path) -> Path:
    """Every image of the tiny demo in one folder, as a camera dump: names say nothing about labels."""
    dest.mkdir(parents=True)
    for k, img in enumerate(sorted(tiny_demo.glob("t*/*/*.png"))):
        shutil.copy(img, dest / f"frame_{k:03d}.png")
    return dest


# ---------------------------------------------------------------- the rules
def test_hold_out_is_seeded_stable_and_never_everything():
    paths = [f"good/{k:03d}.png" for k in range(50)]
    first = held_out(paths)
    assert len(first) == 10 and first == held_out(list(reversed(paths)))  # order does not matter
    assert held_out(paths, seed=1) != first
    # Adding images does not move the ones already split (hash ranks, not a shuffle) beyond the share.
    grown = held_out(paths + [f"good/{k:03d}.png" for k in range(50, 60)])
    assert len(grown) == 12 and len(first - grown) <= 2
    assert held_out(["a.png"]) == set() and len(held_out(["a.png", "b.png"], share=0.99)) == 1


def test_role_of_each_label_and_split():
    assert role("good", "train") == "train"
    assert role("good", "test") == role("good", "unsorted") == role("defect", "train") == "judged"
    assert role("suspicious", "train") == "suspicious" and role("unlabeled", "train") == "unlabeled"


def test_mvtec_trains_on_train_good_and_judges_the_test_split(tiny_demo):
    sets = sets_from_folder(scan_folder(tiny_demo))
    assert sets.counts() == {"train": 12, "judged_good": 4, "judged_defect": 6, "suspicious": 0, "unlabeled": 0}
    assert all("/train/good/" in it.path for it in sets.train)
    assert not {it.path for it in sets.train} & {it.path for it in sets.judged}


def test_folder_layout_holds_out_a_share_of_the_good_images_for_judging(tiny_demo, tmp_path):
    sets = sets_from_folder(scan_folder(folder_layout(tiny_demo, tmp_path / "f")))
    c = sets.counts()
    assert c["train"] + c["judged_good"] == 16 and c["judged_good"] == round(0.2 * 16) and c["judged_defect"] == 6
    assert not {it.path for it in sets.train} & {it.path for it in sets.judged}


def test_a_flat_folder_trains_on_nothing_until_images_are_marked(tiny_demo, tmp_path):
    sets = sets_from_folder(scan_folder(flat_folder(tiny_demo, tmp_path / "flat")))
    assert sets.counts()["train"] == 0 and sets.n_unlabeled == 22
    with pytest.raises(TooFewTrainingImages, match=r"0 images labeled good and marked for training.*--train"):
        sets.require_training(1, "gmm")


@pytest.mark.parametrize("layout", ["mvtec", "folder"])
def test_a_new_project_store_holds_the_same_sets_as_the_folder_layout(tiny_demo, tmp_path, layout):
    if layout == "mvtec":
        data = Path(shutil.copytree(tiny_demo, tmp_path / "d"))
    else:
        data = folder_layout(tiny_demo, tmp_path / "d")
    from_layout = sets_from_folder(scan_folder(data))
    with open_project(data) as store:
        from_store = sets_from_store(store)
    assert project_store_path(data).is_file()
    assert sorted(it.path for it in from_store.train) == sorted(it.path for it in from_layout.train)
    assert sorted(it.path for it in from_store.judged) == sorted(it.path for it in from_layout.judged)
    assert image_sets(data).counts() == from_layout.counts()  # the store decides now, and agrees


def test_store_labels_decide_what_trains_and_what_is_judged(tiny_demo, tmp_path):
    data = flat_folder(tiny_demo, tmp_path / "flat")
    with open_project(data) as store:
        ids = [im.id for im in store.images()]
        store.set_labels([(i, "good", None, None) for i in ids[:6]])
        store.set_split(ids[:4], "train")
        store.set_labels([(ids[6], "defect", "scratch", None), (ids[7], "suspicious", None, None)])
        sets = sets_from_store(store)
        assert sets.train_ids == ids[:4] and sets.judged_ids == [ids[4], ids[5], ids[6]]
        assert (sets.n_suspicious, sets.n_unlabeled) == (1, 22 - 8)
        assert [r.id for r in store.set_split(ids[:4], "train")] == []  # already so: nothing written
    with Store.open(project_store_path(data), readonly=True) as store:  # split changes are on disk
        assert [im.split for im in store.images()][:5] == ["train"] * 4 + ["unsorted"]


# ---------------------------------------------------------------- the engine and the command line
def test_folder_layout_evaluate_never_judges_its_training_images(tiny_demo, tmp_path):
    data = folder_layout(tiny_demo, tmp_path / "f")
    report, _, _, test = evaluate(data, "gmm", FAST, log=lambda m: None)
    assert report["sets_from"] == "folder" and report["n_train"] == 13 and report["n_test"] == 3 + 6
    trained = {it.path for it in sets_from_folder(scan_folder(data)).train}
    assert not trained & {it.path for it in test.items}


def test_flat_folder_from_labels_to_evaluate_on_the_command_line(tiny_demo, tmp_path, capsys):
    data = flat_folder(tiny_demo, tmp_path / "flat")
    # Nothing marked: a plain message with the count and how to mark more, never a traceback.
    assert main(["evaluate", str(data), "-d", "gmm", "--set", "image_size=32"]) == 2
    err = capsys.readouterr().err
    assert "0 images labeled good and marked for training" in err and "--train" in err
    assert "Traceback" not in err

    # Which frames are which is known from the demo's layout (the engineer's eye, in a test).
    frames = sorted(tiny_demo.glob("t*/*/*.png"))
    kinds = ["good" if p.parent.name == "good" else "defect" for p in frames]
    good = [data / f"frame_{k:03d}.png" for k, kind in enumerate(kinds) if kind == "good"]
    defect = [data / f"frame_{k:03d}.png" for k, kind in enumerate(kinds) if kind == "defect"]
    listing = tmp_path / "good.txt"
    listing.write_text("# first twelve good frames\n" + "\n".join(str(p) for p in good[:12]) + "\n\n")
    assert main(["label", str(data), "good", "--from-file", str(listing), "--train"]) == 0
    assert "labeled 12 images good" in capsys.readouterr().out and project_store_path(data).is_file()
    for p in good[12:]:
        assert main(["label", str(data), str(p), "good"]) == 0
    for p in defect:
        assert main(["label", str(data), str(p), "defect", "--defect-type", "scratch"]) == 0
    capsys.readouterr()

    report_file = tmp_path / "r.json"
    assert main(["evaluate", str(data), "-d", "gmm", "--set", "image_size=32", "-r", str(report_file)]) == 0
    r = json.loads(report_file.read_text())
    assert r["sets_from"] == "store" and (r["n_train"], r["n_test"], r["n_test_defect"]) == (12, 10, 6)
    assert r["image_auroc"][r["default_component"]] > 0.5
    assert "trained on 12 good images, judged 10" in capsys.readouterr().out

    # The bare store works the same, and `train` on it saves a model.
    model = tmp_path / "m.ai"
    assert main(["train", str(project_store_path(data)), "-d", "gmm", "--set", "image_size=32",
                 "-o", str(model)]) == 0
    assert "trained gmm on 12 images" in capsys.readouterr().out


def test_label_names_unknown_images_and_refuses_training_a_defect(tiny_demo, tmp_path, capsys):
    data = flat_folder(tiny_demo, tmp_path / "flat")
    listing = tmp_path / "list.txt"
    listing.write_text(f"{data / 'frame_000.png'}\n{data / 'no_such.png'}\n")
    assert main(["label", str(data), "good", "--from-file", str(listing)]) == 2
    err = capsys.readouterr().err
    assert "no_such.png: not an image of the project" in err and "frame_000" not in err
    with Store.open(project_store_path(data), readonly=True) as store:
        assert store.label("frame_000.png").label == "good"  # the rest of the work went on
    assert main(["label", str(data), "frame_001.png", "defect", "--train"]) == 2
    assert "only good images train" in capsys.readouterr().err
    assert main(["label", str(data), "good"]) == 2
    assert "name an IMAGE or give --from-file" in capsys.readouterr().err


def test_detectors_that_need_several_images_refuse_fewer_plainly(tiny_demo, tmp_path):
    data = flat_folder(tiny_demo, tmp_path / "flat")
    with open_project(data) as store:
        store.set_labels([(0, "good", None, None), (1, "good", None, None)])
        store.set_split([0, 1], "train")
    with pytest.raises(TooFewTrainingImages, match=r"2 images labeled good.*kde needs at least 4"):
        evaluate(data, "kde", {"image_size": 32}, log=lambda m: None)


def test_unreadable_training_images_count_against_the_minimum(tmp_path):
    data = tmp_path / "flat"
    for k in range(3):
        write_png(data / f"ok{k}.png", np.full((32, 32), 100 + k, np.uint8))
    (data / "broken.png").write_bytes(b"not a png")
    with open_project(data, check_images=False) as store:  # as the window does: broken files stay, as tiles
        store.set_labels([(i, "good", None, None) for i in range(store.n_images)])
        store.set_split(range(store.n_images), "train")
    sets = image_sets(data)
    assert len(sets.train) == 4
    with pytest.raises(TooFewTrainingImages, match=r"3 images labeled good.*kde needs at least 4"):
        evaluate(data, "kde", {"image_size": 32}, log=lambda m: None)
