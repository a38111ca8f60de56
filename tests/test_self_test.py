"""`anomaly-inspector --self-test` and `--version` on the developer install (the bundle's run is the slow test
in tests/test_resources.py)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core import versions
from inspector_gui import self_test
from inspector_gui.launch import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def keep_torch_threads():
    """The window step leaves one core to the UI (torch.set_num_threads); later tests keep their setting."""
    import torch

    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_self_test_passes_every_step_and_times_it(qapp, keep_torch_threads):
    out = io.StringIO()
    assert self_test.run_self_test(out=out) == 0, out.getvalue()
    lines = out.getvalue().splitlines()
    step_lines = [line for line in lines if line.startswith("[")]
    assert [line.split("]")[0] + "]" for line in step_lines] == [f"[{i}/7]" for i in range(1, 8)]
    for (name, _), line in zip(self_test.STEPS, step_lines, strict=True):
        assert line.startswith("[") and f"] {name}: ok in " in line and " s: " in line
    assert "torch " in lines[0] and "device cpu" in lines[0]
    assert lines[-1].startswith("self-test passed: 7 steps in ")
    assert "shown " in step_lines[0] and "after the process started" in step_lines[0]


def test_a_failing_step_is_named_and_stops_the_run(capsys):
    ran = []

    def ok(ctx):
        ran.append("first")
        return "fine"

    def broken(ctx):
        raise RuntimeError("the detector exploded")

    def never(ctx):
        ran.append("third")
        return "should not run"

    out = io.StringIO()
    code = self_test.run_self_test(out=out, steps=[("first", ok), ("train", broken), ("third", never)])
    assert code == 1
    assert ran == ["first"]
    assert "[2/3] train: FAILED after " in out.getvalue() and "the detector exploded" in out.getvalue()
    assert "self-test FAILED at step 2 'train'" in capsys.readouterr().err


def test_the_temporary_folder_is_removed(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(self_test.tempfile, "tempdir", str(tmp_path))
    assert self_test.run_self_test(out=io.StringIO(), steps=[("look", lambda ctx: seen.append(ctx.tmp) or "")]) == 0
    assert seen and not seen[0].exists()


def test_console_script_fails_naming_the_forced_step():
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", self_test.FAIL_ENV: "window", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "inspector_gui.launch", "--self-test"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "self-test FAILED at step 1 'window'" in proc.stderr


def test_version_prints_app_qt_torch_numpy_and_device(capsys):
    import numpy
    import torch
    from PySide6.QtCore import qVersion

    assert main(["--version"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"Anomaly Inspector {versions.app_version()} (")
    assert f"torch {torch.__version__}" in lines and f"numpy {numpy.__version__}" in lines
    assert f"Qt {qVersion()}" in lines and lines[-1] == "device cpu"


def test_fallback_version_matches_pyproject():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert versions.FALLBACK_VERSION == project["version"]
    assert versions.app_version() == project["version"]


def test_window_title_and_about_box(qtbot, tmp_path):
    from PySide6.QtCore import QSettings

    from inspector_gui.about import show_about, window_title
    from inspector_gui.main_window import MainWindow

    assert window_title() == f"Anomaly Inspector {versions.app_version()} (cpu)"
    win = MainWindow(QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(win)
    assert win.windowTitle() == window_title()
    assert not win.windowIcon().isNull()
    help_menu = next(a.menu() for a in win.menuBar().actions() if a.text() == "&Help")
    assert "About Anomaly Inspector" in [a.text() for a in help_menu.actions()]
    dialog = show_about(win)  # open(), not exec(): the test goes on
    qtbot.waitExposed(dialog)
    import torch

    text = dialog.text.text()
    assert torch.__version__ in text and "Qt" in text and "cpu" in text and versions.app_version() in text
    dialog.close()


@pytest.mark.parametrize("argv", [["--version"], ["--self-test"]])
def test_install_flags_come_before_the_verbs(argv, monkeypatch):
    called = []
    monkeypatch.setattr("inspector_gui.launch.cli_main", lambda *a, **k: called.append(a) or 0)
    monkeypatch.setattr(self_test, "run_self_test", lambda: 0)
    assert main(argv) == 0
    assert called == []
