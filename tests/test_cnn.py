"""The supervised CNN (paper 004) on tiny synthetic data: it separates defects from normals after a short
training, refuses plainly with too few defect labels, is judged on held-out labeled images only, and round
trips through a model file."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from core import metrics
from core.cli.entry import main
from core.detectors.base import DetectorError
from core.detectors.registry import create, detector_class
from core.evaluate import evaluate, train_detector
from core.modelio import load_detector
from core.project import image_sets, sets_from_store
from core.project.labeled_split import TooFewLabels, supervised_sets
from core.project.opening import open_project

# Small enough to train in about a second on one CPU thread, still the paper's five conv blocks.
QUICK = {"image_size": 64, "epochs": 12, "batch_size": 8, "hidden": 16}


def synthetic(n: int, defect: bool, seed: int, size: int = 64) -> list[np.ndarray]:
    """Flat noisy grey parts; a defect is a 10 x 10 square 0.3 brighter or darker somewhere on it."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        img = 0.45 + 0.05 * rng.standard_normal((size, size, 1))
        if defect:
            r, c = rng.integers(4, size - 14, 2)
            img[r:r + 10, c:c + 10] += rng.choice([-0.3, 0.3])
        out.append(np.clip(img, 0, 1).astype(np.float32))
    return out


def labeled_project(root: Path, n_good: int, n_defect: int, n_unlabeled: int = 0, seed: int = 0) -> dict[str, str]:
    """A flat folder of synthetic frames with a project store holding the labels; returns path -> kind
    (good / defect / unlabeled-good / unlabeled-defect)."""
    root.mkdir(parents=True, exist_ok=True)
    kinds: dict[str, str] = {}
    frames = ([(img, "good") for img in synthetic(n_good, False, seed)]
              + [(img, "defect") for img in synthetic(n_defect, True, seed + 1)]
              + [(img, "unlabeled-good") for img in synthetic(n_unlabeled - n_unlabeled // 2, False, seed + 2)]
              + [(img, "unlabeled-defect") for img in synthetic(n_unlabeled // 2, True, seed + 3)])
    order = np.random.default_rng(seed).permutation(len(frames))  # names say nothing about labels
    for k, i in enumerate(order):
        img, kind = frames[i]
        path = root / f"frame_{k:03d}.png"
        cv2.imwrite(str(path), (img[:, :, 0] * 255).round().astype(np.uint8))
        kinds[str(path)] = kind
    with open_project(root) as store:
        store.set_labels([(p, kind, "spot" if kind == "defect" else None, None)
                          for p, kind in kinds.items() if kind in ("good", "defect")])
    return kinds


def test_the_cnn_separates_synthetic_defects_after_a_short_training():
    det = create("cnn", **QUICK)
    report = det.fit(synthetic(30, False, 0) + synthetic(12, True, 1), labels=[False] * 30 + [True] * 12)
    assert report.epochs == QUICK["epochs"] and report.loss_history[-1] < report.loss_history[0]
    test = synthetic(20, False, 2) + synthetic(10, True, 3)
    truth = np.array([False] * 20 + [True] * 10)
    result = det.score(test)
    assert metrics.auroc(truth, result.scores) >= 0.95
    assert ((result.components["probability"] > 0.5) == truth).mean() >= 0.9
    assert set(result.components) == {"probability", "logit"}
    np.testing.assert_allclose(result.scores, 1 / (1 + np.exp(-result.components["logit"])))
    # Grad-CAM looks at the square: on fresh defect images the map is hotter inside it than on average.
    rng = np.random.default_rng(9)
    hotter = 0
    for _ in range(8):
        img = 0.45 + 0.05 * rng.standard_normal((64, 64, 1))
        r, c = rng.integers(4, 50, 2)
        img[r:r + 10, c:c + 10] += 0.3
        cam = det.score([np.clip(img, 0, 1).astype(np.float32)]).maps["gradcam"][0]
        assert cam.shape == (64, 64)
        hotter += cam[r:r + 10, c:c + 10].mean() > 1.5 * cam.mean()
    assert hotter >= 6


def test_supervised_flag_and_labels_in_fit():
    cls = detector_class("cnn")
    assert cls.supervised and not detector_class("padim").supervised
    imgs = synthetic(4, False, 0, size=32)
    with pytest.raises(DetectorError, match="supervised"):
        create("cnn", **cls.quick_settings()).fit(imgs)
    with pytest.raises(DetectorError, match="3 labels for 4 images"):
        create("cnn", **cls.quick_settings()).fit(imgs, labels=[True, False, True])
    with pytest.raises(DetectorError, match="unsupervised"):
        create("iforest").fit(imgs, labels=[True, False, True, False])
    with pytest.raises(DetectorError, match="multiple of 32"):
        create("cnn", image_size=100)


def test_class_weighting_gives_each_class_half_of_the_loss():
    import torch

    from core.detectors.supervised.cnn import class_weights

    w = class_weights(torch.tensor([0.0] * 18 + [1.0] * 2))
    assert float(w[:18].sum()) == pytest.approx(10.0) and float(w[18:].sum()) == pytest.approx(10.0)


def test_too_few_defect_labels_is_refused_with_the_counts(tmp_path, capsys):
    labeled_project(tmp_path / "line", n_good=14, n_defect=4)
    sets = image_sets(tmp_path / "line")
    with pytest.raises(TooFewLabels) as err:
        train_detector(sets, "cnn", QUICK)
    message = str(err.value)
    assert "14 good and 4 defect labels" in message and "6 more defect labels" in message
    # The command line: one plain line, no traceback, exit status 2, nothing written.
    code = main(["train", str(tmp_path / "line"), "-d", "cnn", "-o", str(tmp_path / "m.ai")])
    out, errout = capsys.readouterr()
    assert code == 2 and not (tmp_path / "m.ai").exists()
    lines = [line for line in errout.splitlines() if line.strip()]
    assert len(lines) == 1 and "14 good and 4 defect labels" in lines[0] and "Traceback" not in errout


def test_the_report_is_computed_on_held_out_labeled_images_only(tmp_path, capsys):
    kinds = labeled_project(tmp_path / "line", n_good=30, n_defect=15, n_unlabeled=6)
    with open_project(tmp_path / "line", readonly=True) as store:
        split = supervised_sets(sets_from_store(store))
    # A seeded 20 % of each class is held out; unlabeled images are in neither set.
    assert sum(it.label == "defect" for it in split.judged) == 3 and len(split.judged) == 9
    assert sum(it.label == "defect" for it in split.train) == 12 and len(split.train) == 36
    trained, judged = {it.path for it in split.train}, {it.path for it in split.judged}
    assert not trained & judged and all(kinds[p] in ("good", "defect") for p in trained | judged)

    report, det, result, test = evaluate(tmp_path / "line", "cnn", QUICK, log=lambda m: None)
    assert {it.path for it in test.items} == judged  # judged on the held-out share only
    assert report["n_test"] == 9 and report["n_test_defect"] == 3 and report["n_train"] == 36
    assert report["n_train_defect"] == 12 and report["judged"] == "held-out labeled share"
    assert report["left_out"]["unlabeled"] == 6
    assert report["image_auroc"]["probability"] >= 0.9
    assert {str(tmp_path / "line" / p) for p in det.metadata["trained_on"]} == trained

    # `train` reports the same held-out share, in its last line, and stores it with the model.
    code = main(["train", str(tmp_path / "line"), "-d", "cnn", "-o", str(tmp_path / "m.ai"),
                 "-s", "image_size=64", "-s", "epochs=12", "-s", "batch_size=8", "-s", "hidden=16"])
    out = capsys.readouterr().out.strip().splitlines()
    assert code == 0 and out[-1].startswith("held out: 6 good and 3 defect labeled images not trained on: AUROC")
    saved = load_detector(tmp_path / "m.ai").metadata["held_out_report"]
    assert saved["n_judged"] == 9 and saved["image_auroc"]["probability"] >= 0.9
    # `score --split judged` with the model: the labeled images it did not train on, the same nine.
    assert main(["score", str(tmp_path / "line"), "-m", str(tmp_path / "m.ai"), "--split", "judged",
                 "-o", str(tmp_path / "judged.csv")]) == 0
    rows = (tmp_path / "judged.csv").read_text().splitlines()[1:]
    assert {row.split(",")[0] for row in rows} == judged


def test_save_and_load_round_trip(tmp_path):
    det = create("cnn", **QUICK)
    det.fit(synthetic(16, False, 0) + synthetic(8, True, 1), labels=[False] * 16 + [True] * 8)
    test = synthetic(3, False, 5) + synthetic(3, True, 6)
    before = det.score(test)
    det.save(tmp_path / "cnn.ai")
    again = load_detector(tmp_path / "cnn.ai")
    assert type(again) is type(det) and again.params == det.params and again.supervised
    after = again.score(test)
    for name in before.components:
        np.testing.assert_array_equal(before.components[name], after.components[name])
    for a, b in zip(before.maps["gradcam"], after.maps["gradcam"], strict=True):
        np.testing.assert_array_equal(a, b)
    assert again.metadata["n_train_defect"] == 8 and again.metadata["n_train_good"] == 16
