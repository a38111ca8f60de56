"""Image folders as users have them: the MVTec AD layout, the anomalib Folder layout, or a flat folder.

MVTec AD:  train/good/*, test/good/*, test/<defect>/*, ground_truth/<defect>/<stem>_mask.png
Folder:    good/*, <defect>/*, optional masks/<defect>/<stem>[_mask].png   (what `export` writes)
Flat:      any images below the folder, unlabeled.

The one reader of these layouts: evaluation, the window and the store's ground-truth import
(Store.import_mvtec) all use it, so they agree on which images and masks a folder holds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from core.data.images import folder_entries
from core.vocabulary import IMAGE_SUFFIXES


class FolderError(Exception):
    """The folder is missing or holds no images; the message names it."""


@dataclass(frozen=True)
class ImageItem:
    path: str
    split: str  # "train", "test" or "unsorted"
    label: str  # "good", "defect" or "unknown"
    defect_type: str | None = None
    mask_path: str | None = None


@dataclass
class ImageFolder:
    root: Path
    layout: str  # "mvtec", "folder" or "flat"
    items: list[ImageItem] = field(default_factory=list)

    def split(self, name: str) -> list[ImageItem]:
        return [it for it in self.items if it.split == name]


def _images_in(folder: Path, recursive: bool = False) -> list[Path]:
    """Files named like images (hidden ones and folders named like images left out; broken symlinks kept,
    so that they are reported by name)."""
    if not folder.is_dir():
        return []
    return folder_entries(folder, recursive=recursive, images_only=True)


def _all_files(folder: Path) -> list[Path]:
    """Every file (image suffix or not) so that broken/non-image files get reported, not silently lost."""
    return folder_entries(folder)


# Mask file names tried for an image <stem>, in this order: MVTec's <stem>_mask.png first, then what other
# tools write (anomalib's Folder layout uses the image's own name; TIFF masks come from labelling tools).
MASK_NAMES = ("{stem}_mask.png", "{stem}.png", "{stem}_mask.bmp", "{stem}_mask.tif", "{stem}_mask.jpg",
              "{stem}_mask.tiff", "{stem}.tif", "{stem}.tiff")


def find_mask(mask_dir: Path, stem: str) -> str | None:
    """The ground-truth mask of image <stem> in mask_dir, or None."""
    for pattern in MASK_NAMES:
        candidate = mask_dir / pattern.format(stem=stem)
        if candidate.is_file():
            return str(candidate)
    return None


def _subfolders(folder: Path) -> list[Path]:
    """Class folders, sorted; hidden ones (.ipynb_checkpoints, ...) are not classes."""
    try:
        children = list(folder.iterdir())
    except OSError:
        return []
    return sorted(p for p in children if not p.name.startswith(".") and _is_folder(p))


def _is_folder(p: Path) -> bool:
    try:
        return p.is_dir()
    except OSError:  # a symlink loop
        return False


def scan_folder(root: str | Path) -> ImageFolder:
    """Find the images and what the layout says about them. Raises FolderError with a plain message."""
    root = Path(root)
    if not root.exists():
        raise FolderError(f"{root}: no such folder")
    if not root.is_dir():
        raise FolderError(f"{root}: is a file, not a folder of images")
    if (root / "train").is_dir() or (root / "test").is_dir():
        folder = scan_mvtec(root)
    elif (root / "good").is_dir():
        folder = scan_folder_layout(root)
    else:
        folder = ImageFolder(root, "flat", [
            ImageItem(str(p), "unsorted", "unknown") for p in _images_in(root, recursive=True)
        ])
    if not folder.items:
        raise FolderError(f"{root}: no image files found (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
    return folder


def scan_mvtec(root: str | Path) -> ImageFolder:
    """MVTec AD layout: every file of train/<class>/ and test/<class>/ (non-image files too, so that they
    are reported rather than lost), masks from ground_truth/<defect>/ for every defect image."""
    root = Path(root)
    items: list[ImageItem] = []
    for split in ("train", "test"):
        if not (root / split).is_dir():
            continue
        for sub in _subfolders(root / split):
            good = sub.name == "good"
            for p in _all_files(sub):
                mask = None if good else find_mask(root / "ground_truth" / sub.name, p.stem)
                items.append(ImageItem(str(p), split, "good" if good else "defect",
                                       None if good else sub.name, mask))
    return ImageFolder(root, "mvtec", items)


def scan_folder_layout(root: str | Path) -> ImageFolder:
    """anomalib Folder layout: good/ and one folder per defect type, masks from masks/<defect>/."""
    root = Path(root)
    items: list[ImageItem] = []
    for sub in (p for p in _subfolders(root) if p.name != "masks"):
        good = sub.name == "good"
        for p in _all_files(sub):
            mask = None if good else find_mask(root / "masks" / sub.name, p.stem)
            items.append(ImageItem(str(p), "unsorted", "good" if good else "defect",
                                   None if good else sub.name, mask))
    return ImageFolder(root, "folder", items)
