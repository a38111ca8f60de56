"""The `anomaly-inspector` console script: the batch command line of `core`, plus the window.

`core` may not import the GUI (an import-linter contract), so this launcher hands the command line the
function that opens the window. Qt is imported only when a window is asked for, so batch verbs start without
it and keep working where the GUI cannot load.

`--version` and `--self-test` are answered here, before the command line parses its verbs: they concern the
install (bundle or developer's), not a project.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from core.cli import main as cli_main


def open_window(path: str | Path | None, **kwargs: Any) -> int:
    """The window on `path`, where a display exists (kwargs: the demo's trained detector and preset)."""
    # After the demo (kwargs carry its model) a missing window is only a note; asked for directly, an error.
    failed = 0 if kwargs else 2
    try:
        from inspector_gui.app import display_available, run_app
    except ImportError as exc:
        print(f"the window is not available ({exc}); the command line works without it", file=sys.stderr)
        return failed
    if not display_available():
        print("no display found (DISPLAY / WAYLAND_DISPLAY unset): not opening the window", file=sys.stderr)
        return failed
    return run_app(path, **kwargs)


def print_version() -> int:
    """App, Python, numpy, torch, Qt versions and the compute device; Qt's lines only where Qt loads."""
    try:
        from inspector_gui.about import version_lines
    except ImportError as exc:
        from core.versions import version_lines

        print("\n".join(version_lines({"Qt": f"not available ({exc})"})))
        return 0
    print("\n".join(version_lines()))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["--version"]:
        return print_version()
    if argv[:1] == ["--self-test"]:
        from inspector_gui.self_test import run_self_test

        return run_self_test()
    return cli_main(argv, open_window=open_window)


if __name__ == "__main__":
    sys.exit(main())
