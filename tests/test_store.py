"""The HDF5 label store: schema round trip, audit log and replay, runs/maps/thresholds, migrations, locking
against a second process, crash safety under SIGKILL, thread safety, MVTec ground-truth import, CLI."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest

from core.cli.store_verbs import add_commands as add_store_verbs
from core.store import (
    SCHEMA_VERSION,
    Store,
    StoreCorruptError,
    StoreError,
    StoreLockedError,
    StoreVersionError,
    UnknownImageError,
)

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from store_writer_child import kill_trials  # noqa: E402


def write_png(path: Path, value: int, shape: tuple[int, int] = (12, 10)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = np.full(shape, value % 256, np.uint8)
    img[0, 0] = (value * 7) % 256  # distinct bytes per image
    assert cv2.imwrite(str(path), img)
    return path


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    for i in range(6):
        write_png(root / "parts" / f"p{i}.png", 10 * i)
    return root


@pytest.fixture
def store(project: Path):
    s = Store.create(project / "review.h5", project)
    s.add_folder(project / "parts")
    yield s
    s.close()


def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="anomaly-inspector")
    add_store_verbs(parser.add_subparsers())
    args = parser.parse_args(argv)
    return args.func(args)


def make_mvtec(base: Path) -> Path:
    cat = base / "bottle"
    for i in range(3):
        write_png(cat / "train" / "good" / f"{i:03d}.png", i)
    for i in range(2):
        write_png(cat / "test" / "good" / f"{i:03d}.png", 50 + i)
    for i in range(2):
        write_png(cat / "test" / "crack" / f"{i:03d}.png", 100 + i)
        write_png(cat / "ground_truth" / "crack" / f"{i:03d}_mask.png", 255)
    write_png(cat / "test" / "hole" / "000.png", 150)  # no mask on purpose
    (cat / "test" / "crack" / "notes.txt").write_text("not an image")
    return cat


# ---------------------------------------------------------------- schema round trip
def test_round_trip_of_every_part_of_the_schema(store: Store, project: Path) -> None:
    files = sorted((project / "parts").glob("*.png"))
    assert store.n_images == 6
    rec = store.image("parts/p2.png")
    assert rec.sha256 == hashlib.sha256(files[2].read_bytes()).hexdigest()
    assert rec.nbytes == files[2].stat().st_size and rec.split == "unsorted"
    assert store.image_id(files[2]) == rec.id  # an absolute path finds the same image

    store.set_label(0, "good", note="clean")
    store.set_label("parts/p1.png", "defect", defect_type="scratch", note="left edge")
    store.set_label(2, "suspicious", defect_type="dent")
    store.set_label(3, "defect")  # defect without a type
    store.set_label(1, "good", source="model")  # the model disagrees; kept apart
    maps = [np.random.default_rng(i).random((3 + i, 4 + i)) * 10 ** i for i in range(3)]
    run = store.add_run("vae", {"latent": 16, "lr": np.float32(0.5)}, {"trained_on": 40},
                        ["parts/p0.png", "parts/p1.png", str(files[2])],
                        {"M": np.array([0.1, 0.9, 0.5]), "D": np.array([1.0, 2.0, 3.0])}, "M",
                        {"M": maps, "D": [maps[0], None, maps[2]]})
    store.set_threshold(run, 0.3, 0.6, "f1-max")
    store.set_threshold(run, 0.35, 0.7)
    store.close()

    with Store.open(project / "review.h5", readonly=True) as again:
        assert again.root == project
        labels = again.labels()
        assert [(r.label, r.defect_type, r.note, r.source) for r in labels[:4]] == [
            ("good", "", "clean", "human"), ("defect", "scratch", "left edge", "human"),
            ("suspicious", "dent", "", "human"), ("defect", "", "", "human")]
        assert labels[4].label == "unlabeled" and labels[4].source == "none"
        assert again.model_label(1).label == "good" and again.model_label(1).source == "model"
        assert again.label(1).label == "defect"  # the model did not overwrite the person
        info = again.run_info(run)
        assert (info.detector, info.default_component, info.n_images) == ("vae", "M", 3)
        assert info.params == {"latent": 16, "lr": 0.5} and info.metadata == {"trained_on": 40}
        assert set(info.components) == {"M", "D"} and set(info.map_components) == {"M", "D"}
        assert [r.run_id for r in again.list_runs()] == [run] and again.latest_run() == run
        aligned = again.scores(run)
        np.testing.assert_array_equal(aligned[:3], [0.1, 0.9, 0.5])
        assert np.isnan(aligned[3:]).all()
        np.testing.assert_array_equal(again.scores(run, "D")[:3], [1.0, 2.0, 3.0])
        np.testing.assert_array_equal(again.run_image_ids(run), [0, 1, 2])
        for i, m in enumerate(maps):
            got = again.maps(run, i)["M"]
            assert got.shape == m.shape and got.dtype == np.float32
            np.testing.assert_allclose(got, m, rtol=1e-3, atol=m.max() * 1e-3)
        assert again.maps(run, 1, "D")["D"].shape == (0, 0)
        cur = again.threshold(run)
        assert (cur.t1, cur.t2, cur.method) == (0.35, 0.7, "manual")
        assert [(t.t1, t.method) for t in again.threshold_history(run)] == [(0.3, "f1-max"), (0.35, "manual")]
        assert [cur.verdict(s) for s in (0.1, 0.5, 0.7)] == ["good", "suspicious", "defect"]
    with h5py.File(project / "review.h5", "r") as f:  # the documented layout, readable without our code
        assert int(f.attrs["schema_version"]) == SCHEMA_VERSION
        assert f["runs"][run]["maps"]["M"]["data"].dtype == np.float16
        assert f["runs"][run]["maps"]["M"]["data"].compression == "gzip"
        assert int(f["audit"].attrs["n_rows"]) == 5
        assert f.attrs["root_relative"] == b"."
        vlen = []  # no HDF5 variable-length strings anywhere: they live in the tearable global heap

        def check(name: str, obj: h5py.HLObject) -> None:
            vlen.extend(f"{name}@{k}" for k, v in obj.attrs.items() if isinstance(v, str))
            if isinstance(obj, h5py.Dataset):
                fields = [obj.dtype[n] for n in obj.dtype.names] if obj.dtype.names else [obj.dtype]
                vlen.extend(name for dt in fields if h5py.check_vlen_dtype(dt) or dt.kind == "O")

        f.visititems(check)
        check("/", f)
        assert vlen == []


def test_maps_keep_precision_for_huge_and_tiny_values(store: Store) -> None:
    big = np.linspace(0, 3e6, 30).reshape(5, 6)  # beyond float16's 65504
    tiny = np.linspace(0, 3e-7, 30).reshape(6, 5)  # below float16's normal range
    run = store.add_run("ae", {}, {}, ["parts/p0.png", "parts/p1.png"], {"mse": np.array([1.0, 2.0])}, "mse",
                        {"mse": [big, tiny]})
    np.testing.assert_allclose(store.maps(run, 0)["mse"], big, rtol=1e-3, atol=3e6 * 1e-3)
    np.testing.assert_allclose(store.maps(run, 1)["mse"], tiny, rtol=1e-3, atol=3e-7 * 1e-3)


def test_add_run_validates_before_writing(store: Store) -> None:
    with pytest.raises(ValueError, match="2 values for 3 images"):
        store.add_run("vae", {}, {}, ["parts/p0.png", "parts/p1.png", "parts/p2.png"], {"M": [1.0, 2.0]}, "M")
    with pytest.raises(ValueError, match="default component"):
        store.add_run("vae", {}, {}, ["parts/p0.png"], {"M": [1.0]}, "L")
    with pytest.raises(ValueError, match="JSON"):
        store.add_run("vae", {"bad": object()}, {}, ["parts/p0.png"], {"M": [1.0]}, "M")
    with pytest.raises(UnknownImageError):
        store.add_run("vae", {}, {}, ["parts/nope.png"], {"M": [1.0]}, "M")
    assert store.list_runs() == []
    assert store.add_run("vae", {}, {}, ["parts/p0.png"], {"M": [1.0]}, "M") == "run-0001"


def test_half_written_run_is_dropped_on_open(store: Store, project: Path) -> None:
    run = store.add_run("vae", {}, {}, ["parts/p0.png"], {"M": [1.0]}, "M")
    store.close()
    with h5py.File(project / "review.h5", "r+", locking=False) as f:  # a writer killed inside add_run
        f["runs"].create_group(".incomplete-run-0002").create_dataset("image_ids", data=[0])
    with Store.open(project / "review.h5") as s:
        assert [r.run_id for r in s.list_runs()] == [run]
        assert s.add_run("vae", {}, {}, ["parts/p1.png"], {"M": [2.0]}, "M") == "run-0002"
    with h5py.File(project / "review.h5", "r") as f:
        assert sorted(f["runs"]) == ["run-0001", "run-0002"]


def test_label_validation_and_no_op(store: Store) -> None:
    with pytest.raises(ValueError, match="label must be one of"):
        store.set_label(0, "broken")
    with pytest.raises(ValueError, match="no defect type"):
        store.set_label(0, "good", defect_type="scratch")
    with pytest.raises(ValueError, match="source"):
        store.set_label(0, "good", source="intern")
    with pytest.raises(UnknownImageError, match="review.h5"):
        store.set_label(99, "good")
    with pytest.raises(ValueError, match="NUL"):
        store.set_label(0, "defect", defect_type="a\x00b")
    store.set_label(0, "good")
    store.set_label(0, "good")  # same values: nothing to log
    assert len(store.history()) == 1
    # a person confirming an imported label is kept (source human, one audit row); re-importing it is not
    store.set_label(1, "defect", source="import")
    store.set_label(1, "defect", source="import")
    assert len(store.history()) == 2 and store.label(1).source == "import"
    store.set_label(1, "defect")
    assert len(store.history()) == 3 and store.label(1).source == "human"
    store.set_label(1, "defect", source="import")  # an import never overrides the person's confirmation
    assert store.label(1).source == "human"


def test_history_and_replay_reproduce_labels(store: Store) -> None:
    snapshots = []
    steps = [(0, "good", None, "human"), (1, "defect", "scratch", "human"), (0, "suspicious", "dent", "human"),
             (2, "defect", None, "model"), (1, "good", None, "human"), (3, "good", None, "import"),
             (0, "unlabeled", None, "human")]
    for image, label, defect, source in steps:
        store.set_label(image, label, defect_type=defect, source=source)
        snapshots.append(({r.image_id: r for r in store.labels() if r.source != "none"},
                          {r.image_id: r for r in store.model_labels() if r.source != "none"}))
    hist = store.history()
    assert len(hist) == len(steps)
    assert [(e.image_id, e.old_label, e.new_label, e.source) for e in store.history(0)] == [
        (0, "unlabeled", "good", "human"), (0, "good", "suspicious", "human"), (0, "suspicious", "unlabeled", "human")]
    assert all(e.who == store.user and e.time.endswith("+00:00") for e in hist)
    assert [e.seq for e in store.history(source="model")] == [3]
    for k, (labels, model) in enumerate(snapshots, start=1):
        state = store.replay(until=k)
        assert state.labels == labels and state.model_labels == model
    assert store.replay(until=hist[2].time).labels == snapshots[2][0]  # by time as well as by count
    full = store.replay()
    assert full.labels == {r.image_id: r for r in store.labels() if r.source != "none"}
    assert full.model_labels == {2: store.model_label(2)}


def test_readonly_store_refuses_writes(store: Store, project: Path) -> None:
    store.set_label(0, "good")
    store.close()
    with Store.open(project / "review.h5", readonly=True) as ro:
        assert ro.label(0).label == "good" and not ro.unlocked_read
        with pytest.raises(StoreError, match="read-only"):
            ro.set_label(0, "defect")


def test_project_can_move(store: Store, project: Path, tmp_path: Path) -> None:
    store.set_label(4, "defect", defect_type="chip")
    store.close()
    moved = tmp_path / "elsewhere" / "proj2"
    moved.parent.mkdir()
    shutil.move(str(project), str(moved))
    with Store.open(moved / "review.h5") as s:
        assert s.root == moved
        assert s.absolute_path(4) == moved / "parts" / "p4.png" and s.absolute_path(4).is_file()
        assert s.verify_images() == []
        assert s.label("parts/p4.png").defect_type == "chip"
        (moved / "parts" / "p5.png").write_bytes(b"changed")
        (moved / "parts" / "p3.png").unlink()
        problems = {p: msg for _, p, msg in s.verify_images()}
        assert set(problems) == {"parts/p3.png", "parts/p5.png"}
        assert "missing" in problems["parts/p3.png"] and "changed" in problems["parts/p5.png"]


def test_add_images_reports_problems_and_keeps_ids(store: Store, project: Path, tmp_path: Path) -> None:
    outside = write_png(tmp_path / "outside.png", 3)
    new = write_png(project / "more" / "m0.png", 4)
    res = store.add_images([new, project / "more" / "missing.png", outside, project / "more",
                            project / "parts" / "p0.png"])
    assert res.added == 1 and res.existing == 1 and res.ids == [6, 0]
    reasons = dict(res.skipped)
    assert "cannot read" in reasons[str(project / "more" / "missing.png")]
    assert "outside the project root" in reasons[str(outside)]
    assert "folder" in reasons[str(project / "more")]
    again = store.add_images(["more/m0.png"], split="test")  # relative to the project root
    assert again.ids == [6] and again.added == 0 and store.image(6).split == "test"


def test_torn_label_row_is_repaired_from_the_log(store: Store, project: Path) -> None:
    store.set_label(0, "good")
    store.close()
    with h5py.File(project / "review.h5", "r+") as f:  # what a writer killed between row and log leaves
        n_logged = int(f["audit"].attrs["n_rows"])
        row = f["labels"][2]
        row["label"], row["source"], row["seq"] = 2, 1, n_logged  # points at an entry never counted
        f["labels"][2] = row
    with Store.open(project / "review.h5") as s:
        assert s.repaired_images == [2]
        assert s.label(2).label == "unlabeled" and s.label(0).label == "good"
    with Store.open(project / "review.h5") as s:
        assert s.repaired_images == []


# ---------------------------------------------------------------- versions
def make_v0_store(project: Path, path: Path) -> None:
    """A schema-0 file as the prototype wrote it: labels as attributes, no hashes, no audit log."""
    with h5py.File(path, "w") as f:
        f.attrs["schema_version"] = 0
        f.attrs["project_root"] = str(project)
        f.create_dataset("images", data=np.array([f"parts/p{i}.png" for i in range(4)] + ["parts/gone.png"],
                                                 dtype=h5py.string_dtype()))
        labels = f.create_group("labels")
        labels.attrs["parts/p0.png"] = "normal"
        labels.attrs["parts/p1.png"] = "anomalous"
        labels.attrs["parts/gone.png"] = "anomalous"
        types = f.create_group("defect_types")
        types.attrs["parts/p1.png"] = "scratch"


def test_schema0_file_opens_migrated_with_backup(project: Path) -> None:
    path = project / "old.h5"
    make_v0_store(project, path)
    with Store.open(path, readonly=True) as ro:  # read-only: migrated into a temporary copy
        assert ro.migrated_from == 0 and ro.label(1).label == "defect"
    with h5py.File(path, "r") as f:
        assert int(f.attrs["schema_version"]) == 0  # untouched by a read-only open
    with Store.open(path) as s:
        assert s.migrated_from == 0 and s.backup_path == project / "old.h5.schema0.bak"
        assert any("not found" in note for note in s.migration_notes)
        assert s.n_images == 5 and s.root == project
        assert [(r.label, r.defect_type, r.source) for r in s.labels()] == [
            ("good", "", "import"), ("defect", "scratch", "import"), ("unlabeled", "", "none"),
            ("unlabeled", "", "none"), ("defect", "", "import")]
        assert s.image(0).sha256 == hashlib.sha256((project / "parts/p0.png").read_bytes()).hexdigest()
        assert s.image(4).sha256 == "" and s.image(4).nbytes == -1
        assert len(s.history()) == 3
        assert s.replay().labels == {r.image_id: r for r in s.labels() if r.source != "none"}
        s.set_label(2, "suspicious")  # and it is a normal writable store now
    with h5py.File(path, "r") as f:
        assert int(f.attrs["schema_version"]) == SCHEMA_VERSION
        assert json.loads(f.attrs["migrations"])[0]["from"] == 0
    with h5py.File(project / "old.h5.schema0.bak", "r") as f:
        assert int(f.attrs["schema_version"]) == 0
    with Store.open(path) as s:
        assert s.migrated_from is None and s.label(2).label == "suspicious"


def test_newer_schema_is_refused(store: Store, project: Path) -> None:
    store.close()
    with h5py.File(project / "review.h5", "r+") as f:
        f.attrs["schema_version"] = SCHEMA_VERSION + 5
    for readonly in (False, True):
        with pytest.raises(StoreVersionError, match="newer") as err:
            Store.open(project / "review.h5", readonly=readonly)
        assert str(project / "review.h5") in str(err.value)


def test_files_that_are_not_stores(tmp_path: Path) -> None:
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not hdf5 at all" * 10)
    with pytest.raises(StoreCorruptError, match="junk.h5"):
        Store.open(junk)
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["x"] = 1
    with pytest.raises(StoreCorruptError, match="not an Anomaly Inspector store"):
        Store.open(other)
    with pytest.raises(StoreError, match="no such store file"):
        Store.open(tmp_path / "missing.h5")
    with pytest.raises(StoreError, match="already exists"):
        Store.create(other, tmp_path)


# ---------------------------------------------------------------- one writer
HOLDER = textwrap.dedent("""
    import sys
    from core.store import Store
    s = Store.open(sys.argv[1])
    print("READY", flush=True)
    sys.stdin.readline()
    s.close()
""")


def test_second_process_is_refused_with_a_clear_message(store: Store, project: Path) -> None:
    path = project / "review.h5"
    store.set_label(0, "defect", defect_type="scratch")
    store.close()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HDF5_USE_FILE_LOCKING": "FALSE"}  # our lock holds anyway
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(path)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert holder.stdout.readline().strip() == "READY"
        with pytest.raises(StoreLockedError) as err:
            Store.open(path)
        assert str(path) in str(err.value) and "open elsewhere" in str(err.value)
        with Store.open(path, readonly=True) as ro:  # read-only still works, without a lock
            assert ro.unlocked_read and ro.label(0).defect_type == "scratch"
        with pytest.raises(StoreLockedError):
            Store.open(path, readonly=True, allow_unlocked_read=False)
    finally:
        holder.communicate("\n", timeout=30)
    assert holder.returncode == 0
    # and the other way round: this process holds it, a CLI in another process is refused in one line
    with Store.open(path):
        proc = subprocess.run([sys.executable, "-c",
                               "import sys; sys.path.insert(0, 'tests'); from test_store import run_cli; "
                               f"sys.exit(run_cli(['label', {str(path)!r}, 'parts/p1.png', 'good']))"],
                              cwd=ROOT, capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and str(path) in lines[0] and "open elsewhere" in lines[0], proc.stderr
    with Store.open(path) as s:  # free again once both have closed
        assert s.label(1).label == "unlabeled"


def test_same_process_second_handle_is_refused(store: Store, project: Path) -> None:
    with pytest.raises(StoreLockedError, match="review.h5"):
        Store.open(project / "review.h5")


# ---------------------------------------------------------------- crash safety
def test_sigkill_never_loses_an_acknowledged_label(tmp_path: Path) -> None:
    root = tmp_path / "kill"
    for i in range(40):  # real (tiny) images: add_folder skips files that do not decode
        write_png(root / "img" / f"{i}.png", i, (2, 2))
    with Store.create(root / "s.h5", root) as s:
        s.add_folder(root / "img")
    stats = kill_trials(root / "s.h5", 22, seed=7)
    assert stats.failed_opens == 0 and stats.lost == 0 and stats.log_mismatches == 0, stats.problems
    assert stats.trials == 22
    assert stats.acked > 100  # the writer really was labeling when it was killed


# ---------------------------------------------------------------- threads
def test_two_threads_labeling_and_one_reading(store: Store, project: Path) -> None:
    errors: list[BaseException] = []
    done = threading.Event()

    def writer(offset: int) -> None:
        try:
            for k in range(60):
                store.set_label((k + offset) % 6, ("good", "defect", "suspicious")[k % 3], note=f"t{offset}-{k}")
        except BaseException as exc:  # collected and re-raised in the test thread
            errors.append(exc)

    def reader() -> None:
        try:
            while not done.is_set():
                assert len(store.labels()) == 6
                store.history(0)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(o,)) for o in (0, 3)] + [threading.Thread(target=reader)]
    for t in threads:
        t.start()
    for t in threads[:2]:
        t.join()
    done.set()
    threads[2].join()
    assert errors == []
    assert len(store.history()) == 120  # every write changed the note, so every one was logged
    assert store.replay().labels == {r.image_id: r for r in store.labels()}
    final = store.labels()
    store.close()
    with Store.open(project / "review.h5") as again:
        assert again.labels() == final


# ---------------------------------------------------------------- MVTec import
def test_import_mvtec_ground_truth(tmp_path: Path) -> None:
    cat = make_mvtec(tmp_path / "data")
    with Store.create(tmp_path / "data" / "bottle.h5", tmp_path / "data") as s:
        res = s.import_mvtec(cat)
        assert (res.added, res.labeled, res.masks) == (8, 8, 2)
        assert res.missing_masks == [str(cat / "test" / "hole" / "000.png")]
        assert [p for p, _ in res.skipped] == [str(cat / "test" / "crack" / "notes.txt")]
        by_path = {img.path: (img, s.label(img.id)) for img in s.images()}
        img, lab = by_path["bottle/train/good/001.png"]
        assert (img.split, lab.label, lab.source) == ("train", "good", "import")
        img, lab = by_path["bottle/test/crack/001.png"]
        assert (img.split, img.source_defect, lab.label, lab.defect_type) == ("test", "crack", "defect", "crack")
        assert img.mask_path == "bottle/ground_truth/crack/001_mask.png"
        assert by_path["bottle/test/good/000.png"][1].label == "good"
        assert by_path["bottle/test/hole/000.png"][1].defect_type == "hole"
        assert all(e.source == "import" for e in s.history())
        s.set_label("bottle/test/good/000.png", "suspicious", note="looks off")
        again = s.import_mvtec(cat)  # re-import: nothing new, the person's label survives
        assert (again.added, again.labeled, again.unchanged) == (0, 0, 7)
        assert again.kept_human == [str(cat / "test" / "good" / "000.png")]
        assert s.label("bottle/test/good/000.png").label == "suspicious"
        with pytest.raises(StoreError, match="not an MVTec"):
            s.import_mvtec(cat / "test")


def test_tif_masks_are_found_by_evaluation_and_by_the_store_import(tmp_path: Path) -> None:
    """One layout reader for both: a labelling tool's .tif/.tiff masks count as ground truth in each."""
    from core.data.folders import scan_folder

    cat = tmp_path / "data" / "bottle"
    write_png(cat / "train" / "good" / "000.png", 1)
    write_png(cat / "test" / "crack" / "000.png", 2)
    write_png(cat / "test" / "crack" / "001.png", 3)
    (cat / "ground_truth" / "crack").mkdir(parents=True)
    assert cv2.imwrite(str(cat / "ground_truth" / "crack" / "000_mask.tif"), np.full((12, 10), 255, np.uint8))
    assert cv2.imwrite(str(cat / "ground_truth" / "crack" / "001.tiff"), np.full((12, 10), 255, np.uint8))
    scanned = {Path(it.path).name: it.mask_path for it in scan_folder(cat).split("test")}
    assert scanned == {"000.png": str(cat / "ground_truth" / "crack" / "000_mask.tif"),
                       "001.png": str(cat / "ground_truth" / "crack" / "001.tiff")}
    with Store.create(tmp_path / "data" / "bottle.h5", tmp_path / "data") as s:
        res = s.import_mvtec(cat)
        assert res.masks == 2 and res.missing_masks == []
        masks = {img.path: img.mask_path for img in s.images() if img.source_defect}
    assert masks == {"bottle/test/crack/000.png": "bottle/ground_truth/crack/000_mask.tif",
                     "bottle/test/crack/001.png": "bottle/ground_truth/crack/001.tiff"}


def test_label_codes_on_disk_are_the_shared_vocabulary(store: Store, project: Path) -> None:
    """The label enum in the file, core.vocabulary and the threshold model's codes are one numbering."""
    from core.threshold import label_codes
    from core.vocabulary import LABELS

    store.close()
    with h5py.File(project / "review.h5", "r") as f:
        on_disk = h5py.check_enum_dtype(f["labels"].dtype["label"])
    assert on_disk == {"unlabeled": 0, "good": 1, "defect": 2, "suspicious": 3}
    assert {name: int(label_codes([name])[0]) for name in LABELS} == on_disk


def test_opening_a_store_does_not_import_opencv_or_qt() -> None:
    """The crash test starts many writer processes; each must not pay for OpenCV (or load Qt)."""
    code = ("import sys, core.store; bad = [m for m in ('cv2', 'PySide6', 'torch') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stdout + proc.stderr


# ---------------------------------------------------------------- command line
def test_cli_import_label_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cat = make_mvtec(tmp_path / "data")
    store_path = tmp_path / "bottle.h5"
    assert run_cli(["import-gt", str(store_path), str(cat)]) == 0
    assert "8 labels set" in capsys.readouterr().out
    with Store.open(store_path, readonly=True) as s:
        assert s.root == tmp_path / "data"  # default root: the folder holding the image folder
    assert run_cli(["label", str(store_path), str(cat / "test" / "good" / "001.png"), "defect",
                    "--defect-type", "dent", "--note", "tiny"]) == 0
    assert "bottle/test/good/001.png: defect (dent)" in capsys.readouterr().out
    with Store.open(store_path, readonly=True) as s:
        rec = s.label("bottle/test/good/001.png")
        assert (rec.label, rec.defect_type, rec.note, rec.source) == ("defect", "dent", "tiny", "human")
    for argv, needle in [
        (["label", str(tmp_path / "nope.h5"), "x.png", "good"], "nope.h5: no such store file"),
        (["label", str(store_path), "bottle/none.png", "good"], "bottle.h5"),
        (["label", str(store_path), "bottle/test/good/000.png", "good", "--defect-type", "x"], "bottle.h5"),
        (["import-gt", str(store_path), str(tmp_path / "nothing")], "nothing: no such folder"),
    ]:
        assert run_cli(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and needle in err[0] and "Traceback" not in err[0], err
