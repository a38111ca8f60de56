"""The recommended detector: what `anomaly-inspector evaluate DATA` uses without --detector and what the window
preselects. It is PaDiM on EfficientNet-Lite0 features with the settings that held on every dev category and
under lighting drift (docs/benchmarks.md, "lighting drift and the recommended detector"):

- photometric = gain: each image's median brightness is brought to the training images' before the backbone,
  so a lamp or exposure change does not move the verdicts (PaDiM's bottle AUROC with the good test images 10 %
  darker: 0.05 without it, 1.00 with it);
- clusters = 3: the training images are grouped by appearance (k-means on their average feature) and each
  group gets its own per-position Gaussians; an image is judged against the group it fits best. Mixed
  populations are the rule on a line (two part variants, mono and poly solar cells): on elpv, image AUROC
  0.875 with one group, 0.906 with three; bottle and magnetic tile do not lose (1.000, 0.979).

A named detector, not only a preset, so a model file says it was trained as the recommendation of its day.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from core.detectors.base import Param
from core.detectors.features.padim import PaDiM

RECOMMENDED_DEFAULTS = {"clusters": 3, "photometric": "gain"}


def _with_defaults(params: tuple[Param, ...]) -> tuple[Param, ...]:
    return tuple(dataclasses.replace(p, default=RECOMMENDED_DEFAULTS[p.name]) if p.name in RECOMMENDED_DEFAULTS
                 else p for p in params)


class Recommended(PaDiM):
    name = "recommended"
    PARAMS: ClassVar[tuple[Param, ...]] = _with_defaults(PaDiM.PARAMS)
