"""The training loop every iteratively trained detector shares: epochs of steps, the time budget, cancel, and
a loss history, so each says the same thing about what stopped it (DESIGN: every trainable detector accepts
--time-budget)."""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from core.detectors.base import Cancelled, FitReport, ProgressFn, StopFn


def run_training(
    step: Any, *, epochs: int, steps_per_epoch: int, time_budget: float,
    progress: ProgressFn, should_stop: StopFn, after_epoch: Any = None,
) -> FitReport:
    """Call `step()` (returns the batch loss) until the epochs are done or the time budget is spent.

    Says which one stopped it; the loss history holds one mean per epoch (and the live value goes to
    `progress` every step for the GUI's curve). `after_epoch(epoch)`, when given, runs after every epoch and
    returns True to stop early ("converged": e.g. early stopping on a validation split).
    """
    report = FitReport()
    start = time.perf_counter()
    total = epochs * steps_per_epoch
    for epoch in range(epochs):
        losses = []
        for s in range(steps_per_epoch):
            if should_stop():
                raise Cancelled()
            loss = float(step())
            if not math.isfinite(loss):
                raise FloatingPointError(f"training diverged (loss {loss}) at epoch {epoch + 1}, step {s + 1}")
            losses.append(loss)
            report.steps += 1
            elapsed = time.perf_counter() - start
            # epochs and time_budget let a progress display put the curve in epochs and bound its ETA.
            progress(report.steps, total, {"loss": loss, "epoch": epoch + 1, "elapsed": elapsed, "epochs": epochs,
                                           "time_budget": time_budget})
            if time_budget and elapsed >= time_budget:
                report.stopped_by = "time_budget"
                break
        report.loss_history.append(float(np.mean(losses)))
        report.epochs = epoch + 1
        if report.stopped_by == "time_budget":
            break
        if after_epoch is not None and after_epoch(epoch + 1) and epoch + 1 < epochs:
            report.stopped_by = "converged"
            break
    report.seconds = time.perf_counter() - start
    return report
