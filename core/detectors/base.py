"""The detector contract every method implements: the Detector interface, its settings and its errors.

The GUI, the CLI, the store and the benchmarks only ever talk to this interface, so a new method
plugs in by subclassing `Detector` and registering a name (see `registry.py`). The result types live in
`results.py`; model files in `model_file.py` (this module writes them, `core.modelio` reads them back into the
registered class).
"""

from __future__ import annotations

import dataclasses
import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from core.data.photometric import MODES as PHOTOMETRIC_MODES
from core.data.photometric import DriftWarning, Normalised, Photometry, drift_warning, training_photometry
from core.detectors.errors import Cancelled, DetectorError
from core.detectors.model_file import write_model_file
from core.detectors.results import ScoreResult

__all__ = ["Cancelled", "Detector", "DetectorError", "FitReport", "Param", "ProgressFn", "StopFn", "never_stop",
           "no_progress"]

# progress(done, total, info): info carries live values such as {"loss": 123.4, "epoch": 3}.
ProgressFn = Callable[[int, int, dict], None]
StopFn = Callable[[], bool]


def no_progress(done: int, total: int, info: dict) -> None:
    """Default progress sink."""


def never_stop() -> bool:
    return False


@dataclass(frozen=True)
class Param:
    """One hyperparameter: the CLI's --set and the GUI's settings form are built from these."""

    name: str
    default: Any
    help: str
    choices: tuple | None = None
    minimum: float | None = None
    maximum: float | None = None
    kind: type | None = None  # the value type when the default is None (e.g. an optional int)

    def parse(self, text: str) -> Any:
        """Convert a command-line string to this parameter's type, with a plain error."""
        kind = self.kind or type(self.default)
        try:
            if self.default is None and text.strip().lower() in ("none", ""):
                value: Any = None
            elif self.default is None and self.kind is None:
                value = _auto(text)
            elif kind is bool:
                if text.lower() not in ("1", "0", "true", "false", "yes", "no"):
                    raise ValueError
                value = text.lower() in ("1", "true", "yes")
            else:
                value = kind(text)
        except ValueError:
            raise DetectorError(f"{self.name}: {text!r} is not a valid {kind.__name__}") from None
        self.check(value)
        return value

    def check(self, value: Any) -> None:
        if value is not None and self.kind is not None and not isinstance(value, self.kind):
            raise DetectorError(f"{self.name}: {value!r} is not a valid {self.kind.__name__}")
        if self.choices is not None and value not in self.choices:
            raise DetectorError(f"{self.name}: {value!r} is not one of {list(self.choices)}")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if self.minimum is not None and value < self.minimum:
                raise DetectorError(f"{self.name}: {value} is below the minimum {self.minimum}")
            if self.maximum is not None and value > self.maximum:
                raise DetectorError(f"{self.name}: {value} is above the maximum {self.maximum}")


def _auto(text: str) -> Any:
    for conv in (int, float):
        try:
            return conv(text)
        except ValueError:
            pass
    return text


@dataclass
class FitReport:
    """What training did: why it stopped and the loss history (for the GUI's curve and the reports)."""

    seconds: float = 0.0
    steps: int = 0
    epochs: int = 0
    stopped_by: str = "done"  # "done" (epoch/step limit), "time_budget", "converged"
    loss_history: list[float] = field(default_factory=list)

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


# Every detector takes it (added to each class's PARAMS): lighting drift moved every detector's verdicts on the
# dev data, in one direction or the other (core/data/photometric.py, docs/benchmarks.md "lighting drift").
PHOTOMETRIC = Param("photometric", "gain", "per-image lighting normalisation before the detector sees an image: "
                    "gain = scale each image's median brightness to the training images' (undoes a lamp "
                    "or exposure change), standardize = also match contrast, none = images as they are",
                    choices=PHOTOMETRIC_MODES)


class Detector(ABC):
    """Base class: holds hyperparameters, trains on normal images, scores any images.

    Images are float32 arrays H x W x C in [0, 1] (see core.data.images). Subclasses declare PARAMS
    and implement `_fit`, `_score`, `_state` / `_load_state`.
    """

    name: ClassVar[str] = ""
    PARAMS: ClassVar[tuple[Param, ...]] = ()
    components: ClassVar[tuple[str, ...]] = ("score",)
    default_component: ClassVar[str] = "score"
    # Fewest good training images the method can fit on; the engine refuses fewer with a plain message
    # (how many there are, how to mark more) before any work starts.
    min_train_images: ClassVar[int] = 1
    # A supervised detector learns from labeled good AND defect images: fit() then takes `labels` (True =
    # defect) and hands them to `_fit(..., labels=...)`; the engine chooses its training and judged sets from
    # the stored labels (core.project.labeled_split) and refuses fewer defect labels than min_defect_labels.
    supervised: ClassVar[bool] = False
    min_defect_labels: ClassVar[int] = 0

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if all(p.name != PHOTOMETRIC.name for p in cls.PARAMS):
            cls.PARAMS = tuple(cls.PARAMS) + (PHOTOMETRIC,)

    def __init__(self, **params: Any) -> None:
        schema = {p.name: p for p in self.PARAMS}
        unknown = set(params) - set(schema)
        if unknown:
            raise DetectorError(
                f"{self.name}: unknown setting(s) {sorted(unknown)}; known: {sorted(schema)}"
            )
        self.params: dict[str, Any] = {p.name: p.default for p in self.PARAMS}
        for key, value in params.items():
            schema[key].check(value)
            self.params[key] = value
        self.fit_report: FitReport | None = None
        self.metadata: dict[str, Any] = {}
        self.fitted = False

    def input_side(self) -> int | None:
        """The shorter side an image must keep when it is decoded: the engine reduces larger frames as they are
        decoded (a 5 MP JPEG decodes several times faster at 1/4 scale). None: full resolution."""
        size = self.params.get("image_size")
        return int(size) if size else None

    # -- public contract -------------------------------------------------------------------------
    def fit(
        self, images: Sequence[np.ndarray], *, progress: ProgressFn = no_progress,
        should_stop: StopFn = never_stop, labels: Sequence[bool] | np.ndarray | None = None,
    ) -> FitReport:
        """Train. `labels` (True = defect, one per image) is for supervised detectors only: they need it,
        the others take no labels."""
        if len(images) == 0:
            raise DetectorError(f"{self.name}: no training images")
        extra: dict[str, Any] = {}
        if self.supervised:
            if labels is None:
                raise DetectorError(f"{self.name} is supervised: it trains on labeled good and defect images")
            flags = np.asarray(labels, dtype=bool).reshape(-1)
            if flags.shape[0] != len(images):
                raise DetectorError(f"{self.name}: {flags.shape[0]} labels for {len(images)} images")
            extra["labels"] = flags
        elif labels is not None:
            raise DetectorError(f"{self.name} is unsupervised: it trains on good images only, without labels")
        photometry = training_photometry(images)
        self.metadata["photometry"] = photometry.to_json()
        report = self._fit(self._normalised(images), progress=progress, should_stop=should_stop, **extra)
        self.fit_report = report
        self.fitted = True
        return report

    def score(
        self, images: Sequence[np.ndarray], *, progress: ProgressFn = no_progress,
        should_stop: StopFn = never_stop,
    ) -> ScoreResult:
        if not self.fitted:
            raise DetectorError(f"{self.name}: score() before fit() or load()")
        if len(images) == 0:
            return ScoreResult(self.default_component, {c: np.zeros(0, np.float32) for c in self.components})
        view = self._normalised(images)
        result = self._score(view, progress=progress, should_stop=should_stop)
        if np.isfinite(view.levels).all():
            result.levels = view.levels
        return result

    def _normalised(self, images: Sequence[np.ndarray]) -> Normalised:
        """`images` as the detector sees them: normalised to the training images' lighting (the setting), each
        image's own lighting recorded for the drift warning."""
        mode = self.params.get(PHOTOMETRIC.name, "none")
        known = self.metadata.get("photometry")
        if known is None:  # a model from before photometry was recorded: images as they are
            return Normalised(images, "none", (0.0, 0.0, 0.0))
        return Normalised(images, mode, Photometry.from_json(known).reference)

    def drift_warning(self, result: ScoreResult) -> DriftWarning | None:
        """A warning when the scored images' lighting lies outside the training images' (None: in range, or no
        figures to compare: a model from before photometry was recorded)."""
        known = self.metadata.get("photometry")
        if known is None or result.levels is None:
            return None
        return drift_warning(Photometry.from_json(known), result.levels)

    def save(self, path: str | Path) -> None:
        path = Path(path)
        if not self.fitted:
            raise DetectorError(f"{path}: cannot save an untrained {self.name} detector")
        meta = {"method": self.name, "params": self.params, "metadata": self.metadata,
                "fit_report": self.fit_report.to_json() if self.fit_report else None}
        write_model_file(path, self._state(), meta)

    @classmethod
    def restore(cls, meta: dict[str, Any], state: dict[str, Any], source: str | Path) -> Detector:
        """The trained detector a model file describes (`source` names the file in errors). Settings the
        class no longer knows are dropped, so models from older versions still load."""
        known = {p.name for p in cls.PARAMS}
        detector = cls(**{k: v for k, v in meta["params"].items() if k in known})
        detector.metadata = dict(meta.get("metadata") or {})
        try:
            detector._load_state(state)
        except (RuntimeError, KeyError, ValueError) as exc:
            raise DetectorError(f"{source}: the weights do not fit the {cls.name} detector ({exc})") from None
        if meta.get("fit_report"):
            detector.fit_report = FitReport(**meta["fit_report"])
        detector.fitted = True
        return detector

    @classmethod
    def quick_settings(cls) -> dict[str, Any]:
        """Settings that make fit + score take about a second on a few 32 px images: what the contract tests
        (tests/test_detector_contract.py) run every registered detector with. A new detector that trains
        slowly at its defaults overrides this."""
        return {}

    # -- for subclasses ----------------------------------------------------------------------------
    @abstractmethod
    def _fit(self, images: Sequence[np.ndarray], *, progress: ProgressFn, should_stop: StopFn) -> FitReport:
        ...

    @abstractmethod
    def _score(self, images: Sequence[np.ndarray], *, progress: ProgressFn, should_stop: StopFn) -> ScoreResult:
        ...

    @abstractmethod
    def _state(self) -> dict[str, Any]:
        """Tensors and arrays to save: name -> torch.Tensor | np.ndarray (no objects)."""

    @abstractmethod
    def _load_state(self, state: dict[str, Any]) -> None:
        ...

    def describe(self) -> str:
        return f"{self.name}({json.dumps(self.params, sort_keys=True)})"
