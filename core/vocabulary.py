"""The words the whole application shares: label names, who set a label, splits, label colours, the other
names people use for labels, and which file suffixes count as images.

One module so that the store, the threshold model, the folder readers and the window cannot drift apart.
It imports nothing (not even numpy), so that opening a store stays a light import: the crash test starts
many writer processes and must not pay for OpenCV or Qt each time.
"""

from __future__ import annotations

# Order is the label store's enum code (core/store/format.py): append new names, never reorder, because
# the codes are in every store file and the threshold model takes them as they are.
LABELS: tuple[str, ...] = ("unlabeled", "good", "defect", "suspicious")
# "none" is the source of an image nobody has labeled; the others are who may set a label.
SOURCES: tuple[str, ...] = ("none", "human", "import", "model")
LABEL_SOURCES: tuple[str, ...] = SOURCES[1:]
SPLITS: tuple[str, ...] = ("unsorted", "train", "test")

# Names from the design text, folder scans ("unknown" = no ground truth) and other tools that mean one of
# LABELS. Keys are lower case; callers strip and lower-case before looking up.
LABEL_ALIASES: dict[str, str] = {
    "": "unlabeled", "none": "unlabeled", "unknown": "unlabeled",
    "normal": "good", "ok": "good",
    "anomalous": "defect", "anomaly": "defect",
}

# Label colours in the window (badges, buttons, histogram, confusion-matrix headers): dark enough for
# white text to stay readable on each of them.
LABEL_COLOURS: dict[str, str] = {"good": "#2e7d32", "defect": "#c62828", "suspicious": "#e65100",
                                 "unlabeled": "#757575"}

# Files the folder readers and importers take as images (by suffix, lower case).
IMAGE_SUFFIXES: frozenset[str] = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm", ".pbm", ".gif"})


def canonical_label(name: str | None) -> str:
    """A label name or alias as one of LABELS; ValueError (naming the input) for anything else."""
    key = (name or "").strip().lower()
    key = LABEL_ALIASES.get(key, key)
    if key not in LABELS:
        raise ValueError(f"unknown label {name!r}; expected one of {', '.join(LABELS)}")
    return key
