"""The values the Store hands out: plain frozen records, detached from the file (safe to keep after close)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ImageRecord:
    id: int
    path: str  # relative to the project root, "/" separators
    sha256: str
    nbytes: int
    split: str
    source_defect: str
    mask_path: str


@dataclass(frozen=True)
class LabelRecord:
    """Current state of one image on one track (review = human/import, or model). Empty strings mean
    "none"; source is "none" for an image nobody has labeled."""

    image_id: int
    label: str = "unlabeled"
    defect_type: str = ""
    note: str = ""
    source: str = "none"
    who: str = ""
    time: str = ""
    run: str = ""


@dataclass(frozen=True)
class AuditEntry:
    seq: int
    time: str
    who: str
    source: str
    image_id: int
    old_label: str
    new_label: str
    old_defect_type: str
    new_defect_type: str
    old_note: str
    new_note: str
    run: str


@dataclass(frozen=True)
class ReplayState:
    """Labels rebuilt from the audit log: `labels` is the review track, `model_labels` the model's."""

    labels: dict[int, LabelRecord]
    model_labels: dict[int, LabelRecord]


@dataclass(frozen=True)
class RunInfo:
    run_id: str
    detector: str
    params: dict
    metadata: dict
    created: str
    who: str
    default_component: str
    components: tuple[str, ...]
    map_components: tuple[str, ...]
    n_images: int
    complete: bool = True  # False: a growing run still being scored, or one that was cancelled or crashed


@dataclass(frozen=True)
class ThresholdRecord:
    """Scores below t1 pass, scores at or above t2 fail, the band in between is for review."""

    run_id: str
    t1: float
    t2: float
    method: str  # preset name or "manual"
    who: str
    time: str

    def verdict(self, score: float) -> str:
        if score < self.t1:
            return "good"
        return "defect" if score >= self.t2 else "suspicious"


@dataclass
class AddImagesResult:
    ids: list[int] = field(default_factory=list)  # one per accepted path (new or already present)
    added: int = 0
    existing: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)


@dataclass
class ImportResult:
    added: int = 0
    existing: int = 0
    labeled: int = 0
    unchanged: int = 0
    kept_human: list[str] = field(default_factory=list)  # human labels an import does not overwrite
    masks: int = 0
    missing_masks: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
