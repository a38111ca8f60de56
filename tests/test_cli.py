"""The batch command line end to end on a tiny generated set: train, score, evaluate, errors."""

import json

import pytest

from core.cli import main

TINY = ["--set", "patch_size=32", "--set", "stride=16", "--set", "n_conv=4", "--set", "base_channels=8",
        "--set", "latent=8", "--set", "epochs=1", "--set", "patches_per_image=2"]


def test_train_then_score(tiny_demo, tmp_path, capsys):
    model = tmp_path / "vae.ai"
    assert main(["train", str(tiny_demo), "--detector", "vae", *TINY, "--out", str(model)]) == 0
    assert model.is_file()
    out = tmp_path / "scores.json"
    assert main(["score", str(tiny_demo), "--model", str(model), "--out", str(out), "--split", "test"]) == 0
    data = json.loads(out.read_text())
    assert data["default_component"] == "M" and len(data["images"]) == 10
    row = data["images"][0]
    assert row["L"] == pytest.approx(row["D"] + row["A"] + row["M"], rel=1e-5)
    csv_out = tmp_path / "scores.csv"
    assert main(["score", str(tiny_demo), "--model", str(model), "--out", str(csv_out)]) == 0
    assert csv_out.read_text().splitlines()[0].startswith("path,label,defect_type,score")
    assert len(csv_out.read_text().splitlines()) == 1 + 22


def test_evaluate_writes_the_report_keys(tiny_demo, tmp_path, capsys):
    report = tmp_path / "r.json"
    assert main(["evaluate", str(tiny_demo), "-d", "vae", *TINY, "--time-budget", "30",
                 "--report", str(report)]) == 0
    r = json.loads(report.read_text())
    for key in ("detector", "params", "image_auroc", "image_aupr", "pixel_auroc", "train_seconds",
                "score_images_per_second", "n_train", "n_test"):
        assert key in r
    assert set(r["image_auroc"]) == {"M", "L", "D", "A"} == set(r["pixel_auroc"])
    assert r["n_train"] == 12 and r["n_test"] == 10 and r["params"]["time_budget"] == 30.0
    assert all(0 <= v <= 1 for v in r["image_auroc"].values())
    printed = capsys.readouterr().out
    assert "AUROC" in printed and "(default)" in printed


def test_evaluate_single_score_detector(tiny_demo, tmp_path):
    report = tmp_path / "r.json"
    assert main(["evaluate", str(tiny_demo), "-d", "iforest", "--set", "patch_size=16", "--set", "stride=8",
                 "--set", "n_estimators=10", "--set", "pca_components=5", "--report", str(report)]) == 0
    assert set(json.loads(report.read_text())["image_auroc"]) == {"score"}


@pytest.mark.parametrize("argv,needle", [
    (["train", "/no/such/folder", "--out", "x.ai"], "/no/such/folder: no such folder"),
    (["evaluate", "{data}", "-d", "nosuch"], "unknown detector 'nosuch'"),
    (["evaluate", "{data}", "-d", "vae", "--set", "epochs=lots"], "epochs: 'lots' is not a valid int"),
    (["score", "{data}", "--model", "{data}/missing.ai", "--out", "o.json"], "missing.ai: no such model file"),
])
def test_user_errors_are_one_line(tiny_demo, argv, needle, capsys):
    argv = [a.replace("{data}", str(tiny_demo)) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1 and "Traceback" not in err


def test_corrupt_file_in_the_data_is_reported_and_skipped(tiny_demo, tmp_path, capsys):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(tiny_demo, data)
    (data / "train" / "good" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    (data / "train" / "good" / "zero.png").write_bytes(b"")
    report = tmp_path / "r.json"
    assert main(["evaluate", str(data), "-d", "vae", *TINY, "--report", str(report)]) == 0
    err = capsys.readouterr().err
    assert "broken.png" in err and "zero.png" in err
    r = json.loads(report.read_text())
    assert r["n_train"] == 12 and len(r["skipped_files"]) == 2


def test_evaluate_without_a_detector_uses_the_recommended_one(tiny_demo, tmp_path, capsys):
    report = tmp_path / "r.json"
    assert main(["evaluate", str(tiny_demo), "--set", "image_size=32", "--report", str(report)]) == 0
    r = json.loads(report.read_text())
    assert r["detector"] == "recommended" and r["params"]["clusters"] == 3 and r["params"]["photometric"] == "gain"
    assert r["image_auroc"]["score"] > 0.5 and r["drift_warning"] is None


def test_help_lists_every_verb(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for verb in ("train", "score", "evaluate", "demo", "detectors"):
        assert verb in out


def test_core_command_line_without_a_window_opener_says_so(capsys):
    """`python -m core.cli` has no window (core may not import the GUI): asking for it is a plain error."""
    assert main([]) == 2
    assert "anomaly-inspector" in capsys.readouterr().err


def test_console_script_passes_the_window_opener(tmp_path, monkeypatch):
    """The installed `anomaly-inspector` (inspector_gui.launch) opens the window for a bare path."""
    from inspector_gui import launch

    opened = []
    monkeypatch.setattr(launch, "open_window", lambda path, **kw: opened.append(path) or 0)
    assert launch.main([str(tmp_path)]) == 0
    assert opened == [str(tmp_path)]
    assert launch.main(["detectors"]) == 0 and opened == [str(tmp_path)]
