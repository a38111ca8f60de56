"""The parser and the dispatch: a verb runs its command; a bare call or a path asks for the window."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from core.cli import demo, detector_verbs, store_verbs
from core.cli.window import WindowOpener, no_window
from core.data.folders import FolderError
from core.detectors.base import DetectorError
from core.store import StoreError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="anomaly-inspector",
        description="Train unsupervised anomaly detectors on good part images, score, evaluate and export. "
                    "Without a command (or with a folder or store path) the window opens.")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    detector_verbs.add_commands(sub)
    demo.add_commands(sub)
    store_verbs.add_commands(sub)
    return parser


def _command_names(parser: argparse.ArgumentParser) -> set[str]:
    return {name for action in parser._subparsers._group_actions for name in action.choices}


def main(argv: list[str] | None = None, open_window: WindowOpener | None = None) -> int:
    """Run one command line. `open_window` shows the window (given by the GUI's launcher); without it a
    request for the window is answered with a plain message."""
    opener: WindowOpener = open_window or no_window
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    commands = _command_names(parser)
    # Bare command, or a folder / store path instead of a verb: open the window on it.
    if not argv or (argv[0] not in commands and not argv[0].startswith("-")):
        target = argv[0] if argv else None
        if target is not None and not Path(target).exists():
            print(f"error: {target}: no such folder or store file (commands: {', '.join(sorted(commands))})",
                  file=sys.stderr)
            return 2
        return opener(target)
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] | None = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 0
    args.open_window = opener
    try:
        return int(func(args) or 0)
    except (FolderError, DetectorError, StoreError, ValueError, OSError) as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
