"""Image folders as users have them: the MVTec AD layout, the anomalib Folder layout, or a flat folder.

MVTec AD:  train/good/*, test/good/*, test/<defect>/*, ground_truth/<defect>/<stem>_mask.png
Folder:    good/*, <defect>/*, optional masks/<defect>/<stem>[_mask].png   (what `export` writes)
Flat:      any images below the folder, unlabeled.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from core.data.images import IMAGE_SUFFIXES


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

    @property
    def train(self) -> list[ImageItem]:
        """Images to fit on: MVTec train/good; in the other layouts every image labeled good."""
        if self.layout == "mvtec":
            return self.split("train")
        return [it for it in self.items if it.label == "good"]

    @property
    def test(self) -> list[ImageItem]:
        if self.layout == "mvtec":
            return self.split("test")
        return list(self.items)


def _images_in(folder: Path, recursive: bool = False) -> list[Path]:
    if not folder.is_dir():
        return []
    pattern = "**/*" if recursive else "*"
    files = [p for p in folder.glob(pattern) if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    return sorted(files)


def _all_files(folder: Path) -> list[Path]:
    """Every file (image suffix or not) so that broken/non-image files get reported, not silently lost."""
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


def _mask_for(mask_dir: Path, stem: str) -> str | None:
    for name in (f"{stem}_mask.png", f"{stem}.png", f"{stem}_mask.bmp", f"{stem}_mask.jpg"):
        candidate = mask_dir / name
        if candidate.is_file():
            return str(candidate)
    return None


def scan_folder(root: str | Path) -> ImageFolder:
    """Find the images and what the layout says about them. Raises FolderError with a plain message."""
    root = Path(root)
    if not root.exists():
        raise FolderError(f"{root}: no such folder")
    if not root.is_dir():
        raise FolderError(f"{root}: is a file, not a folder of images")
    if (root / "train").is_dir() or (root / "test").is_dir():
        folder = _scan_mvtec(root)
    elif (root / "good").is_dir():
        folder = _scan_folder_layout(root)
    else:
        folder = ImageFolder(root, "flat", [
            ImageItem(str(p), "unsorted", "unknown") for p in _images_in(root, recursive=True)
        ])
    if not folder.items:
        raise FolderError(f"{root}: no image files found (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
    return folder


def _scan_mvtec(root: Path) -> ImageFolder:
    items: list[ImageItem] = []
    train = root / "train"
    if train.is_dir():
        for sub in sorted(p for p in train.iterdir() if p.is_dir()):
            label = "good" if sub.name == "good" else "defect"
            items += [ImageItem(str(p), "train", label, None if label == "good" else sub.name)
                      for p in _all_files(sub)]
    test = root / "test"
    if test.is_dir():
        for sub in sorted(p for p in test.iterdir() if p.is_dir()):
            good = sub.name == "good"
            for p in _all_files(sub):
                mask = None if good else _mask_for(root / "ground_truth" / sub.name, p.stem)
                items.append(ImageItem(str(p), "test", "good" if good else "defect",
                                       None if good else sub.name, mask))
    return ImageFolder(root, "mvtec", items)


def _scan_folder_layout(root: Path) -> ImageFolder:
    items: list[ImageItem] = []
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and p.name != "masks"):
        good = sub.name == "good"
        for p in _all_files(sub):
            mask = None if good else _mask_for(root / "masks" / sub.name, p.stem)
            items.append(ImageItem(str(p), "unsorted", "good" if good else "defect",
                                   None if good else sub.name, mask))
    return ImageFolder(root, "folder", items)
