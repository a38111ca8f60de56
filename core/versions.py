"""What is running: the application version and the versions of the engine's libraries, and the compute
device. Shown by `anomaly-inspector --version`, the About box and the window title (the GUI adds Qt's).

Qt-free, and cheap to import: torch is imported only when asked about.
"""

from __future__ import annotations

import sys
from importlib import metadata

DIST_NAME = "anomaly-inspector"
# Used only where the package metadata is missing (running from a source checkout that was never installed);
# tests/test_self_test.py checks that it matches pyproject.toml.
FALLBACK_VERSION = "0.1.0"


def app_version() -> str:
    try:
        return metadata.version(DIST_NAME)
    except metadata.PackageNotFoundError:
        return FALLBACK_VERSION


def is_frozen() -> bool:
    """True in the PyInstaller bundle."""
    return bool(getattr(sys, "frozen", False))


def compute_device() -> str:
    """The device the detectors use by default ("cuda" where a GPU torch sees one, else "cpu")."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def library_versions() -> dict[str, str]:
    """Name -> version of what the engine runs on (the GUI adds Qt and PySide6)."""
    import numpy
    import torch

    return {"python": sys.version.split()[0], "numpy": numpy.__version__, "torch": torch.__version__}


def version_lines(extra: dict[str, str] | None = None) -> list[str]:
    """`anomaly-inspector --version`: the app version first, then one `name version` per library and the
    device; `extra` adds the GUI's (Qt) entries."""
    build = "bundle" if is_frozen() else "installed"
    lines = [f"Anomaly Inspector {app_version()} ({build})"]
    libs = {**library_versions(), **(extra or {})}
    lines += [f"{name} {version}" for name, version in libs.items()]
    lines.append(f"device {compute_device()}")
    return lines
