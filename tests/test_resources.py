"""The application's resources (icon, desktop entry) load from the package, go into the wheel, and the
desktop bundle builds and passes its self-test (slow; only with ANOMALY_INSPECTOR_BUILD_BUNDLE=1)."""

from __future__ import annotations

import configparser
import fnmatch
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

import resources

ROOT = Path(__file__).resolve().parents[1]


def test_svg_icon_parses_and_every_png_has_its_size(qapp):
    from PySide6.QtCore import QByteArray
    from PySide6.QtGui import QImage
    from PySide6.QtSvg import QSvgRenderer

    assert QSvgRenderer(QByteArray(resources.icon_svg())).isValid()
    for size in resources.ICON_SIZES:
        image = QImage.fromData(resources.icon_png(size), "PNG")
        assert (image.width(), image.height()) == (size, size)
        assert image.hasAlphaChannel()


def test_window_icon_holds_every_size(qapp):
    from inspector_gui.about import app_icon

    icon = app_icon()
    assert not icon.isNull()
    sizes = {s.width() for s in icon.availableSizes()}
    assert sizes == set(resources.ICON_SIZES)
    assert not icon.pixmap(48, 48).isNull()


def test_unknown_resources_are_plain_errors():
    with pytest.raises(FileNotFoundError, match="nothing.svg"):
        resources.read_bytes("icons/nothing.svg")
    with pytest.raises(ValueError, match="no 17 px icon"):
        resources.icon_png(17)


def test_desktop_entry_has_the_keys_a_launcher_needs():
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # keys are case-sensitive
    parser.read_string(resources.desktop_entry())
    entry = parser["Desktop Entry"]
    assert entry["Type"] == "Application"
    assert entry["Name"] == "Anomaly Inspector"
    assert entry["Exec"].split()[0] == "anomaly-inspector"
    assert entry["Icon"] == resources.ICON_NAME
    assert entry["Terminal"] == "false"
    assert entry["Categories"].endswith(";")
    validator = shutil.which("desktop-file-validate")
    if validator:
        path = Path(str(resources.resource(resources.DESKTOP_ENTRY)))
        proc = subprocess.run([validator, str(path)], capture_output=True, text=True, timeout=30)
        assert proc.returncode == 0, proc.stdout + proc.stderr


def test_install_desktop_entry_writes_entry_and_icons_for_the_user(tmp_path):
    exe = tmp_path / "bin" / "anomaly-inspector"
    exe.parent.mkdir()
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "data")}
    script = ROOT / "packaging" / "install-desktop-entry.sh"
    proc = subprocess.run(["bash", str(script), str(exe)], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    entry = (tmp_path / "data" / "applications" / "anomaly-inspector.desktop").read_text()
    assert f'Exec="{exe}" %f' in entry and f"TryExec={exe}" in entry
    for size in resources.ICON_SIZES:
        assert (tmp_path / "data" / "icons" / "hicolor" / f"{size}x{size}" / "apps" / "anomaly-inspector.png").is_file()
    proc = subprocess.run(["bash", str(script), "--uninstall"], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and not (tmp_path / "data" / "applications" / "anomaly-inspector.desktop").exists()


def test_every_resource_file_goes_into_the_wheel():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert "resources*" in config["packages"]["find"]["include"]
    globs = config["package-data"]["resources"]
    files = [p.relative_to(ROOT / "resources").as_posix() for p in (ROOT / "resources").rglob("*")
             if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".py"]
    assert files
    missing = [f for f in files if not any(fnmatch.fnmatch(f, g) for g in globs)]
    assert missing == []


def test_no_dataloader_workers_that_a_frozen_app_would_fork():
    """The bundle must not start DataLoader worker processes (a frozen program re-runs itself for them):
    nothing in the application asks for workers."""
    offenders = []
    for path in [*(ROOT / "core").rglob("*.py"), *(ROOT / "inspector_gui").rglob("*.py")]:
        for match in re.finditer(r"num_workers\s*=\s*([^,)\s]+)", path.read_text()):
            if match.group(1) != "0":
                offenders.append(f"{path.relative_to(ROOT)}: {match.group(0)}")
    assert offenders == []


@pytest.mark.slow
@pytest.mark.timeout(3600)  # past pytest-timeout's per-test default: the build alone takes minutes
@pytest.mark.skipif(os.environ.get("ANOMALY_INSPECTOR_BUILD_BUNDLE") != "1",
                    reason="builds the PyInstaller bundle (minutes on 2 cores): set ANOMALY_INSPECTOR_BUILD_BUNDLE=1")
def test_bundle_builds_and_passes_its_self_test():
    build = subprocess.run(["bash", "packaging/build.sh"], cwd=ROOT, capture_output=True, text=True, timeout=3600)
    assert build.returncode == 0, build.stdout[-4000:] + build.stderr[-4000:]
    bundle = ROOT / "dist" / "anomaly-inspector"
    exe = bundle / "anomaly-inspector"
    assert exe.is_file()
    internal = bundle / "_internal"
    assert not (internal / "torch" / "include").exists() and not list(internal.rglob("libcudnn*"))
    assert (internal / "resources" / resources.DESKTOP_ENTRY).is_file()
    size = sum(p.stat().st_size for p in bundle.rglob("*") if p.is_file() and not p.is_symlink())
    assert size < 1.2e9, f"the bundle grew to {size / 1e9:.2f} GB (target: under 1.2 GB)"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["QT_QPA_PLATFORM"] = "offscreen"
    proc = subprocess.run([str(exe), "--self-test"], capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "self-test passed: 7 steps" in proc.stdout
    version = subprocess.run([str(exe), "--version"], capture_output=True, text=True, timeout=120, env=env)
    assert version.returncode == 0 and "(bundle)" in version.stdout.splitlines()[0]
