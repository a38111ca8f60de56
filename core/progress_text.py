"""A terminal progress bar for the command line (stderr), usable as a detector progress callback."""

from __future__ import annotations

import sys
import time
from typing import Any


class TextProgress:
    """Redraws one line on a terminal; on a pipe or CI log prints a line at most every 10 seconds."""

    def __init__(self, label: str, stream: Any = None, min_interval: float | None = None):
        self.label = label
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.min_interval = min_interval if min_interval is not None else (0.1 if self.tty else 10.0)
        self.start = time.perf_counter()
        self.last = 0.0
        self.drawn = False

    def __call__(self, done: int, total: int, info: dict) -> None:
        now = time.perf_counter()
        if now - self.last < self.min_interval and done < total:
            return
        self.last = now
        frac = done / total if total else 1.0
        elapsed = now - self.start
        eta = f"ETA {elapsed / frac - elapsed:5.0f}s" if 0 < frac < 1 else f"{elapsed:5.0f}s"
        extra = "".join(f" {k} {v:.4g}" if isinstance(v, float) else f" {k} {v}" for k, v in info.items()
                        if k != "elapsed")
        bar = "#" * int(frac * 24)
        line = f"{self.label:<9} [{bar:<24}] {100 * frac:5.1f}% {eta}{extra}"
        if self.tty:
            self.stream.write("\r" + line[:120].ljust(120))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()
        self.drawn = True

    def __enter__(self) -> TextProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.tty and self.drawn:
            self.stream.write("\n")
            self.stream.flush()
