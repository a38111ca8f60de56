"""Settings every family shares, declared once so the CLI's --set, the window's form and the model files
spell them the same way. A family picks the ones it uses and says in its own words what a seed drives or
what a batch holds."""

from __future__ import annotations

from core.detectors.base import Param

CHANNELS = Param("channels", "auto", "colour handling; auto = RGB if any training image has colour",
                 choices=("auto", "gray", "rgb"))
DEVICE = Param("device", "auto", "torch device: auto, cpu, cuda, mps")
TIME_BUDGET = Param("time_budget", 0.0, "stop training after this many seconds (0 = no limit)", minimum=0.0)


def seed(drives: str) -> Param:
    """The random seed; `drives` names what it makes repeatable (initialisation, crops, ...)."""
    return Param("seed", 0, f"random seed ({drives})")


def batch_size(default: int, holds: str, minimum: int = 1) -> Param:
    """Items per batch; `holds` says what one batch is made of (patches, images, ...)."""
    return Param("batch_size", default, holds, minimum=minimum)
