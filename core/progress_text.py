"""A terminal progress bar for the command line (stderr), usable as a detector progress callback."""

from __future__ import annotations

import sys
import time
from typing import Any

# Progress info keys that feed the ETA rather than being printed.
_QUIET_KEYS = ("elapsed", "epochs", "time_budget")


def eta_seconds(frac: float, elapsed: float, time_budget: float | None = None) -> float | None:
    """Seconds left: the rate so far extrapolated to the end, but never past a training time budget (which
    stops the loop however many epochs remain). None when there is nothing to extrapolate from yet."""
    rate_based = elapsed / frac - elapsed if frac > 0 else None
    if time_budget:
        left = max(0.0, time_budget - elapsed)
        return left if rate_based is None else min(rate_based, left)
    return rate_based


def budget_fraction(frac: float, elapsed: float, time_budget: float | None = None) -> float:
    """Done fraction for a bar: a time budget that will end training first moves the bar by time."""
    return max(frac, min(1.0, elapsed / time_budget)) if time_budget else frac


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
        elapsed = now - self.start
        # The training loop reports its own elapsed time and budget: the ETA of the loop, bounded by it.
        budget, loop_elapsed = info.get("time_budget"), info.get("elapsed", elapsed)
        frac = budget_fraction(done / total if total else 1.0, loop_elapsed, budget)
        left = eta_seconds(frac, loop_elapsed, budget) if frac < 1 else None
        eta = f"ETA {left:5.0f}s" if left is not None else f"{elapsed:5.0f}s"
        extra = "".join(f" {k} {v:.4g}" if isinstance(v, float) else f" {k} {v}" for k, v in info.items()
                        if k not in _QUIET_KEYS)
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
