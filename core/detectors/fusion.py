"""A fusion of detectors: each member scores the image, each score is standardised on good images the members
did not train on, and the fused score is their mean.

Why: the members fail differently. Pretrained features (PaDiM, PatchCore) see texture and structure at a few
scales; a patch model trained on the part (the VAE's M, the GMM) sees the part's own statistics. Standardising
on held-out good images (z = (s - median) / (1.4826 MAD), robust to the odd unusual good image) puts the scores
on one scale without labels; training-image scores cannot be used for that, since a member has fit them (PatchCore's
own training patches are in its memory bank: their scores are near zero).

The held-out share (`calibration_share`, seeded) is taken from the training images; the members train on the
rest. Components: the fused score (default) and each member's z-score; maps: each member's default map.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from core.detectors import settings
from core.detectors.base import Detector, FitReport, Param, ProgressFn, StopFn
from core.detectors.features import PaDiM, PatchCore
from core.detectors.patch import PatchGMM, PatchVAE
from core.detectors.results import ScoreResult

MEMBERS: dict[str, type[Detector]] = {"padim": PaDiM, "patchcore": PatchCore, "vae": PatchVAE, "gmm": PatchGMM}
MEMBER_CHOICES = ("padim+patchcore", "padim+vae", "padim+gmm", "patchcore+vae", "padim+patchcore+gmm")
MIN_CALIBRATION = 5  # held-out good images: fewer, and the members' scores are standardised on their training images


class _Subset(Sequence[np.ndarray]):
    """Images `indices` of a sequence, read on demand (a lazy source stays lazy)."""

    def __init__(self, images: Sequence[np.ndarray], indices: Sequence[int]) -> None:
        self.images, self.indices = images, list(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return [self.images[i] for i in self.indices[index]]
        return self.images[self.indices[index]]


class Fusion(Detector):
    name = "fusion"
    PARAMS = (
        Param("members", "padim+patchcore", "detectors whose standardised scores are averaged",
              choices=MEMBER_CHOICES),
        Param("calibration_share", 0.15, "share of the training images held out to standardise each member's "
              "score (seeded)", minimum=0.0, maximum=0.5),
        Param("image_size", 224, "image side for every member", minimum=32, maximum=1024),
        settings.TIME_BUDGET,
        settings.seed("the calibration split; passed to the members"),
        settings.DEVICE,
    )
    components = ("fused",)
    default_component = "fused"
    min_train_images = 2

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.members: dict[str, Detector] = {}
        self.calibration: dict[str, tuple[float, float]] = {}

    @classmethod
    def quick_settings(cls) -> dict[str, Any]:
        return {"image_size": 32, "members": "padim+gmm"}

    @property
    def member_names(self) -> list[str]:
        return self.params["members"].split("+")

    def _member(self, name: str) -> Detector:
        cls = MEMBERS[name]
        known = {p.name for p in cls.PARAMS}
        wanted = {"image_size": self.params["image_size"], "seed": self.params["seed"],
                  "device": self.params["device"], "photometric": "none"}  # images arrive normalised already
        if "time_budget" in known and self.params["time_budget"]:
            wanted["time_budget"] = self.params["time_budget"] / len(self.member_names)
        return cls(**{k: v for k, v in wanted.items() if k in known})

    # -- fit ------------------------------------------------------------------------------------------------
    def _fit(self, images: Sequence[np.ndarray], *, progress: ProgressFn, should_stop: StopFn) -> FitReport:
        t0 = time.perf_counter()
        n = len(images)
        n_cal = int(round(self.params["calibration_share"] * n))
        rng = np.random.default_rng(self.params["seed"])
        order = rng.permutation(n)
        if n_cal < MIN_CALIBRATION or n - n_cal < 1:
            fit_idx, cal_idx = list(range(n)), list(range(n))  # too few: standardise on the training images
        else:
            cal_idx, fit_idx = sorted(order[:n_cal].tolist()), sorted(order[n_cal:].tolist())
        fit_set, cal_set = _Subset(images, fit_idx), _Subset(images, cal_idx)
        names = self.member_names
        self.members, self.calibration = {}, {}
        stopped = "done"
        for k, name in enumerate(names):
            member = self._member(name)

            def member_progress(done: int, total: int, info: dict, k: int = k, name: str = name) -> None:
                frac = (k + (done / total if total else 0.0)) / len(names)
                progress(int(1000 * frac), 1000, {**info, "member": name})

            report = member.fit(fit_set, progress=member_progress, should_stop=should_stop)
            if report.stopped_by != "done":
                stopped = report.stopped_by
            scores = member.score(cal_set, should_stop=should_stop).scores.astype(np.float64)
            med = float(np.median(scores))
            mad = float(1.4826 * np.median(np.abs(scores - med)))
            scale = mad if mad > 1e-12 else float(np.std(scores)) or 1.0
            self.members[name] = member
            self.calibration[name] = (med, scale)
        self.metadata["members"] = {name: {"params": m.params, "metadata": m.metadata,
                                           "fit_report": m.fit_report.to_json() if m.fit_report else None}
                                    for name, m in self.members.items()}
        self.metadata["calibration"] = {name: list(v) for name, v in self.calibration.items()}
        self.metadata["n_calibration"] = len(cal_idx) if cal_idx is not fit_idx else 0
        progress(1000, 1000, {})
        return FitReport(seconds=time.perf_counter() - t0, steps=n, epochs=1, stopped_by=stopped)

    # -- score ----------------------------------------------------------------------------------------------
    def _score(self, images: Sequence[np.ndarray], *, progress: ProgressFn, should_stop: StopFn) -> ScoreResult:
        names = self.member_names
        components: dict[str, np.ndarray] = {}
        maps: dict[str, list[np.ndarray]] = {}
        geometry = []
        for k, name in enumerate(names):
            member = self.members[name]

            def member_progress(done: int, total: int, info: dict, k: int = k) -> None:
                progress(int(len(images) * (k + (done / total if total else 0.0)) / len(names)), len(images), info)

            part = member.score(images, progress=member_progress, should_stop=should_stop)
            med, scale = self.calibration[name]
            components[name] = (part.scores.astype(np.float64) - med) / scale
            if part.maps.get(part.default_component):
                maps[name] = part.maps[part.default_component]
                if not geometry:
                    geometry = part.geometry
        fused = np.mean([components[n] for n in names], axis=0)
        return ScoreResult(self.default_component, {"fused": fused, **components}, maps, geometry)

    # -- model file -----------------------------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        return {f"{name}.{key}": value for name, m in self.members.items() for key, value in m._state().items()}

    def _load_state(self, state: dict[str, Any]) -> None:
        recorded = self.metadata.get("members") or {}
        if set(recorded) != set(self.member_names):
            raise ValueError(f"the model holds members {sorted(recorded)}, its settings say {self.member_names}")
        self.members, self.calibration = {}, {}
        for name in self.member_names:
            cls = MEMBERS[name]
            known = {p.name for p in cls.PARAMS}
            member = cls(**{k: v for k, v in recorded[name]["params"].items() if k in known})
            member.metadata = dict(recorded[name]["metadata"])
            prefix = f"{name}."
            member._load_state({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)})
            member.fitted = True
            self.members[name] = member
            cal = (self.metadata.get("calibration") or {}).get(name)
            if cal is None:
                raise ValueError(f"no calibration recorded for member {name}")
            self.calibration[name] = (float(cal[0]), float(cal[1]))
