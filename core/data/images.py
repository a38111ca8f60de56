"""Safe image decoding: any file a user drops in a folder is either an image or a named, skipped problem.

Images are decoded from bytes (so unicode paths work on every platform) into float32 arrays H x W x C in
[0, 1], C = 1 (gray) or 3 (RGB). 16-bit images keep their precision; float images are cleaned (NaN -> 0,
infinities clipped) and brought into [0, 1]; alpha is dropped after compositing on black, since inspection
images carry no meaningful transparency; the EXIF orientation is applied for every format.

Hostile files never get as far as a decoder that could crash or eat the memory: the header is read first
(Pillow opens lazily: the size without decoding a pixel) and an image over the pixel limit is refused with
its size in the reason. Every decoder failure (OpenCV errors, MemoryError, anything else) becomes an
ImageLoadError(path, reason), so one bad file is a named skip and the rest of the work goes on.
"""

from __future__ import annotations

import errno
import os
import stat
import struct
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageSequence, UnidentifiedImageError

from core.vocabulary import IMAGE_SUFFIXES as IMAGE_SUFFIXES  # defined once, in core.vocabulary

# 256 MP: a 12-25 MP camera frame or a 100 MP line-scan image loads; a 60000 x 60000 "bomb" does not.
DEFAULT_MAX_PIXELS = 256_000_000
MAX_PIXELS_ENV = "ANOMALY_INSPECTOR_MAX_PIXELS"

# The limit is ours (in megapixels, in the reason); Pillow's own check would refuse earlier with a warning
# text users cannot act on, so it is switched off here, the one place the program uses Pillow.
Image.MAX_IMAGE_PIXELS = None
# Pillow's UserWarnings (corrupt EXIF, palette transparency) say nothing the skip reason does not; not
# silenced per call with warnings.catch_warnings, which is not thread-safe (the gallery decodes on a pool).
warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL(\.|$)")

# OpenCV logs "PNG input buffer is incomplete" and the like without a file name; the skip we report names
# the file and the reason, so its codec chatter would only interleave with it.
cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)

_override: int | None = None


class ImageLoadError(Exception):
    """A file that cannot be read as an image. str() is "PATH: REASON"; .path and .reason separately."""

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


@dataclass(frozen=True)
class Skipped:
    path: str
    reason: str

    def __str__(self) -> str:
        return f"skipped {self.path}: {self.reason}"


# ---------------------------------------------------------------------------------------------- pixel limit
def parse_pixels(text: str) -> int:
    """'256000000', '256e6', '256M' or '256MP' -> pixels. ValueError with a plain message otherwise."""
    s = str(text).strip().upper().removesuffix("P")
    scale = 1_000_000 if s.endswith("M") else 1
    try:
        value = float(s.removesuffix("M")) * scale
    except ValueError:
        raise ValueError(f"pixel limit {text!r} is not a number (examples: 256M, 400000000)") from None
    if not value >= 1 or value != value:
        raise ValueError(f"pixel limit {text!r} must be at least 1 pixel")
    return int(value)


def set_max_pixels(pixels: int | None) -> None:
    """Set the process-wide pixel limit (the CLI's --max-pixels); None goes back to the env or default."""
    global _override
    _override = None if pixels is None else int(pixels)


def max_pixels() -> int:
    """The pixel limit now in force: set_max_pixels, else $ANOMALY_INSPECTOR_MAX_PIXELS, else 256 MP."""
    if _override is not None:
        return _override
    env = os.environ.get(MAX_PIXELS_ENV, "").strip()
    if env:
        try:
            return parse_pixels(env)
        except ValueError as exc:
            raise ValueError(f"${MAX_PIXELS_ENV}: {exc}") from None
    return DEFAULT_MAX_PIXELS


def _mp(pixels: float) -> str:
    if pixels < 100_000:
        return f"{pixels:.0f} pixels"
    return f"{pixels / 1e6:.0f} MP" if pixels >= 10e6 else f"{pixels / 1e6:.1f} MP"


# ---------------------------------------------------------------------------------------------- listing
def unreadable_reason(path: str | Path) -> str | None:
    """Why `path` cannot even be opened as a file (None if it can): missing, dangling or looping symlink,
    folder, not a regular file, permission denied."""
    path = Path(path)
    try:
        st = path.stat()
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "unreadable: symbolic link loop"
        if path.is_symlink():
            return "unreadable: broken symbolic link (its target is missing)"
        if exc.errno == errno.EACCES:
            return "unreadable: permission denied"
        return "unreadable: no such file" if exc.errno == errno.ENOENT else f"unreadable: {exc.strerror or exc}"
    if stat.S_ISDIR(st.st_mode):
        return "is a folder, not an image file"
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file (device, pipe or socket)"
    if not os.access(path, os.R_OK):
        return "unreadable: permission denied"
    return None


def may_be_image_file(path: str | Path) -> bool:
    """Named like an image (by suffix) and not hidden; says nothing about the content."""
    p = Path(path)
    return p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")


def _is_dir(p: Path) -> bool:
    try:
        return p.is_dir()  # follows symlinks; False for dangling or looping ones
    except OSError:
        return False


def folder_entries(folder: str | Path, *, recursive: bool = False, images_only: bool = False) -> list[Path]:
    """The files a user would call the contents of `folder`, sorted: hidden names (.DS_Store, ._x.png,
    .ipynb_checkpoints/) are left out, folders are never entries (even one named like an image, `x.png/`),
    and broken or looping symlinks ARE entries, so that they are reported by name instead of vanishing.
    `recursive` descends into sub-folders (not through symlinked folders: a loop cannot trap the walk);
    `images_only` keeps the names with an image suffix."""
    root = Path(folder)
    out: list[Path] = []
    pending = [root]
    while pending:
        current = pending.pop()
        try:
            children = list(os.scandir(current))
        except OSError:
            continue  # an unreadable sub-folder: nothing to list (the caller reports the folder it asked for)
        for child in children:
            if child.name.startswith("."):
                continue
            p = Path(child.path)
            if _is_dir(p):
                if recursive and not child.is_symlink():
                    pending.append(p)
                continue
            if images_only and not may_be_image_file(p):
                continue
            out.append(p)
    return sorted(out)


# ---------------------------------------------------------------------------------------------- decoding
_MAGIC = ((b"\x89PNG\r\n\x1a\n", "PNG"), (b"\xff\xd8\xff", "JPEG"), (b"GIF8", "GIF"), (b"II*\0", "TIFF"),
          (b"MM\0*", "TIFF"), (b"BM", "BMP"))


def _sniff(data: bytes) -> str:
    """A plain guess at what a non-image file is, for the reason."""
    for magic, name in _MAGIC:
        if data.startswith(magic):
            return f"truncated or corrupt {name} file (it starts like one, the header does not read)"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "truncated or corrupt WEBP file (it starts like one, the header does not read)"
    head = data[:512].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if head.startswith((b"<!doctype html", b"<html", b"<head", b"<body")) or b"<html" in head:
        return "not an image (HTML text)"
    if head.startswith((b"<?xml", b"<svg")):
        return "not an image (XML/SVG text)" if b"<svg" not in head else "not an image (SVG vector graphics)"
    if head.startswith(b"%pdf"):
        return "not an image (PDF document)"
    if head.startswith(b"pk\x03\x04"):
        return "not an image (ZIP archive)"
    sample = data[:4096]
    if sample and sum(32 <= b < 127 or b in (9, 10, 13) for b in sample) > 0.95 * len(sample):
        return "not an image (text)"
    return "not an image, or the file is corrupt"


@dataclass(frozen=True)
class Header:
    width: int
    height: int
    format: str  # Pillow's format name ("PNG", "JPEG", ...), "" when only OpenCV knows it
    orientation: int = 1  # EXIF orientation, 1 = as stored
    mode: str = ""  # Pillow's mode ("L", "RGB", "CMYK", ...)


def read_header(path: str | Path) -> Header | None:
    """Size, format and EXIF orientation without decoding pixels; None when Pillow does not know the
    format (OpenCV may still: PFM, EXR, ...). Raises ImageLoadError for a header that is broken."""
    try:
        with Image.open(path) as im:
            w, h = im.size
            orientation = 1
            # A PNG's getexif() decodes the whole image to look for an eXIf chunk after the pixels;
            # one before them (where writers put it) is already in .info.
            if im.format != "PNG" or "exif" in im.info:
                try:
                    orientation = int(im.getexif().get(0x0112, 1) or 1)
                except Exception:  # a broken EXIF block is no reason to refuse the pixels
                    orientation = 1
            return Header(int(w), int(h), im.format or "", orientation if 1 <= orientation <= 8 else 1,
                          im.mode or "")
    except UnidentifiedImageError:
        return None
    except Image.DecompressionBombError as exc:  # pragma: no cover - the limit is off; kept as a safety net
        raise ImageLoadError(path, f"refused as a decompression bomb ({exc})") from None
    except MemoryError:
        raise ImageLoadError(path, "out of memory reading the header") from None
    except (OSError, ValueError, SyntaxError, EOFError, struct.error) as exc:
        return _header_problem(path, exc)


def _header_problem(path: str | Path, exc: Exception) -> None:
    """A header Pillow stumbles on: truncation is certain; anything else is left to OpenCV."""
    text = str(exc).lower()
    if "truncated" in text or isinstance(exc, EOFError):
        raise ImageLoadError(path, "truncated (the file ends inside the image header)") from None
    return None  # let OpenCV try; it either reads it or fails with its own reason


def _check_limit(path: str | Path, w: int, h: int, limit: int) -> None:
    if w <= 0 or h <= 0:
        raise ImageLoadError(path, f"header says {w} x {h} pixels: an empty image")
    if w * h > limit:
        raise ImageLoadError(path, f"header says {w} x {h} = {_mp(w * h)}, over the {_mp(limit)} limit "
                                   f"(--max-pixels or ${MAX_PIXELS_ENV} to raise it)")


def decode_image(path: str | Path, channels: str = "keep", max_pixels: int | None = None,
                 max_side: int | None = None) -> np.ndarray:
    """Read one image file. channels: 'keep', 'gray' or 'rgb'. Raises ImageLoadError, never crashes.

    max_side (previews, thumbnails): the result is shrunk to fit in max_side x max_side, and a JPEG is
    decoded at 1/2, 1/4 or 1/8 scale when that still covers it, so a 24 MP frame costs what 0.4 MP does."""
    raw = _decode_raw(Path(path), max_pixels or None, max_side=max_side)
    try:
        if max_side is not None:
            raw = _shrink(raw, max_side)
        return to_float(raw, channels, source=str(path))
    except MemoryError:
        raise ImageLoadError(path, "out of memory converting the pixels") from None


def _shrink(raw: np.ndarray, max_side: int) -> np.ndarray:
    h, w = raw.shape[:2]
    scale = max_side / max(h, w)
    if scale >= 1.0 or raw.ndim == 3 and raw.shape[2] > 4:
        return raw
    if raw.dtype not in (np.uint8, np.uint16, np.float32):  # what cv2.resize takes; to_float's rules first
        raw = _float_to_unit(raw, stretch=raw.dtype.kind in "iu")
    out = cv2.resize(raw, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    return out.reshape(*out.shape[:2], *raw.shape[2:])


def check_image(path: str | Path, max_pixels: int | None = None) -> None:
    """Raise ImageLoadError unless decode_image(path) would succeed; cheaper (a JPEG is decoded at 1/8 scale,
    which reads the whole stream, so truncation still shows)."""
    _decode_raw(Path(path), max_pixels, check_only=True)


def _decode_raw(path: Path, limit: int | None, check_only: bool = False, max_side: int | None = None
                ) -> np.ndarray:
    """The file's pixels as OpenCV gives them (BGR order, any depth), orientation applied."""
    problem = unreadable_reason(path)
    if problem:
        raise ImageLoadError(path, problem)
    limit = limit or max_pixels()
    size = path.stat().st_size
    if size == 0:
        raise ImageLoadError(path, "the file is empty (0 bytes)")
    # No image within the limit needs more than 8 bytes a pixel (16-bit RGBA, uncompressed) plus metadata.
    if size > limit * 8 + (64 << 20):
        raise ImageLoadError(path, f"the file is {size / 1e9:.1f} GB, more than any image within the "
                                   f"{_mp(limit)} limit can be")
    header = read_header(path)
    if header is not None:
        _check_limit(path, header.width, header.height, limit)
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except PermissionError:
        raise ImageLoadError(path, "unreadable: permission denied") from None
    except OSError as exc:
        raise ImageLoadError(path, f"unreadable: {exc.strerror or exc}") from None
    except MemoryError:
        raise ImageLoadError(path, "out of memory reading the file") from None
    raw = _opencv(path, data, _flags(header, check_only, max_side))
    if raw is None and header is not None:
        raw = _pillow(path, header)  # formats or modes OpenCV does not read (some TIFF, palette BMP, ...)
    if raw is None:
        raise ImageLoadError(path, _failure_reason(path, data, header))
    if not check_only and header is not None and header.orientation != 1:
        raw = _orient(raw, header.orientation)
    return raw


_REDUCED_ = {(2, False): cv2.IMREAD_REDUCED_COLOR_2, (4, False): cv2.IMREAD_REDUCED_COLOR_4,
            (8, False): cv2.IMREAD_REDUCED_COLOR_8, (2, True): cv2.IMREAD_REDUCED_GRAYSCALE_2,
            (4, True): cv2.IMREAD_REDUCED_GRAYSCALE_4, (8, True): cv2.IMREAD_REDUCED_GRAYSCALE_8}
# The orientation is applied once, by _orient, for every format: not by OpenCV's colour decode as well.
_REDUCED = {key: flag | cv2.IMREAD_IGNORE_ORIENTATION for key, flag in _REDUCED_.items()}


def _flags(header: Header | None, check_only: bool, max_side: int | None) -> int:
    """IMREAD_UNCHANGED, or a reduced-scale JPEG decode (libjpeg scales in the DCT: much less work)."""
    if header is None or header.format != "JPEG" or header.mode == "CMYK":
        return cv2.IMREAD_UNCHANGED
    gray = header.mode == "L"
    if check_only:
        return _REDUCED[8, True]
    factor = 1
    if max_side:
        while factor < 8 and max(header.width, header.height) // (factor * 2) >= max_side:
            factor *= 2
    return _REDUCED[factor, gray] if factor > 1 else cv2.IMREAD_UNCHANGED


def _opencv(path: Path, data: np.ndarray, flags: int) -> np.ndarray | None:
    """OpenCV's decode, or None. Formats Pillow does not know (no header size) are guarded by OpenCV's
    own CV_IO_MAX_IMAGE_PIXELS check, whose error becomes a named skip here."""
    try:
        raw = cv2.imdecode(data, flags)
    except MemoryError:
        raise ImageLoadError(path, "out of memory while decoding") from None
    except cv2.error as exc:
        msg = str(exc)
        if "CV_IO_MAX_IMAGE_PIXELS" in msg or "validateInputImageSize" in msg:
            raise ImageLoadError(path, "too large for the decoder (over OpenCV's pixel limit)") from None
        return None
    except Exception:  # any other decoder failure: let Pillow try, then report
        return None
    if raw is None or raw.size == 0:
        return None
    return raw


def _pillow(path: Path, header: Header) -> np.ndarray | None:
    """Decode with Pillow, as OpenCV would have: BGR(A) order, uint8 / uint16 / float32."""
    try:
        with Image.open(path) as im:
            frame = next(iter(ImageSequence.Iterator(im)))  # first frame of an animation
            frame.load()
            mode = frame.mode
            if mode in ("I;16", "I;16B", "I;16L", "I;16N"):
                arr = np.asarray(frame, dtype=np.uint16)
            elif mode == "I":
                arr = np.asarray(frame, dtype=np.int32)  # to_float stretches the values present
            elif mode == "F":
                arr = np.asarray(frame, dtype=np.float32)
            elif mode in ("L", "1"):
                arr = np.asarray(frame.convert("L"), dtype=np.uint8)
            elif mode in ("RGBA", "LA", "PA", "La", "RGBa") or (mode == "P" and "transparency" in frame.info):
                arr = cv2.cvtColor(np.asarray(frame.convert("RGBA"), dtype=np.uint8), cv2.COLOR_RGBA2BGRA)
            else:
                arr = cv2.cvtColor(np.asarray(frame.convert("RGB"), dtype=np.uint8), cv2.COLOR_RGB2BGR)
        return np.ascontiguousarray(arr)
    except MemoryError:
        raise ImageLoadError(path, "out of memory while decoding") from None
    except Exception:
        return None


def _failure_reason(path: Path, data: np.ndarray, header: Header | None) -> str:
    if header is None:
        return _sniff(data[:4096].tobytes())
    what = header.format or "image"
    return f"truncated or corrupt {what} file (the header reads, the pixels do not)"


def _orient(raw: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (2-8) so the image is shown the way the camera was held."""
    ops = {2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
           5: lambda a: np.swapaxes(a, 0, 1), 6: lambda a: np.swapaxes(a, 0, 1)[:, ::-1],
           7: lambda a: np.swapaxes(a, 0, 1)[::-1, ::-1], 8: lambda a: np.swapaxes(a, 0, 1)[::-1]}
    return np.ascontiguousarray(ops[orientation](raw))


def to_float(raw: np.ndarray, channels: str = "keep", source: str = "image") -> np.ndarray:
    """Convert an OpenCV array (BGR order, any depth) to float32 H x W x C in [0, 1]."""
    if raw.dtype == np.uint8:
        img = raw.astype(np.float32) / 255.0
    elif raw.dtype == np.uint16:
        img = raw.astype(np.float32) / 65535.0
    elif raw.dtype in (np.float16, np.float32, np.float64):
        img = _float_to_unit(raw)
    elif raw.dtype.kind in "iu":  # int8, int16, int32, uint32 (TIFF): stretch the values present
        img = _float_to_unit(raw.astype(np.float64), stretch=True)
    else:
        raise ImageLoadError(source, f"unsupported pixel type {raw.dtype}")
    if img.ndim == 2:
        img = img[:, :, None]
    if img.ndim != 3:
        raise ImageLoadError(source, f"unsupported image shape {raw.shape}")
    if img.shape[2] == 2:  # gray + alpha
        img = img[:, :, :1] * img[:, :, 1:2]
    elif img.shape[2] == 4:  # BGRA: composite on black
        img = img[:, :, :3] * img[:, :, 3:4]
    elif img.shape[2] > 4:  # multispectral TIFF: the first three bands as BGR
        img = img[:, :, :3]
    if img.shape[2] == 3:
        img = img[:, :, ::-1]  # BGR -> RGB
    return convert_channels(np.ascontiguousarray(img), channels)


def _float_to_unit(raw: np.ndarray, stretch: bool = False) -> np.ndarray:
    """Float pixels into [0, 1]: NaN -> 0, +-inf -> the finite extremes; values already in [0, 1] stay,
    any other range (HDR, depth maps, counts) is stretched to it."""
    arr = raw.astype(np.float64)
    finite = np.isfinite(arr)
    if not finite.any():
        return np.zeros(arr.shape, np.float32)
    lo, hi = float(arr[finite].min()), float(arr[finite].max())
    arr = np.nan_to_num(arr, nan=0.0 if lo <= 0.0 <= hi or not stretch else lo, posinf=hi, neginf=lo)
    if stretch or lo < 0.0 or hi > 1.0:
        arr = (arr - lo) / (hi - lo) if hi > lo else np.zeros_like(arr)
    return np.clip(arr, 0.0, 1.0).astype(np.float32)


def convert_channels(img: np.ndarray, channels: str) -> np.ndarray:
    if channels == "keep":
        return img
    if channels == "gray":
        if img.shape[2] == 1:
            return img
        gray = cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2GRAY)
        return gray[:, :, None]
    if channels == "rgb":
        return img if img.shape[2] == 3 else np.repeat(img, 3, axis=2)
    raise ValueError(f"channels must be keep, gray or rgb, not {channels!r}")


def resize_image(img: np.ndarray, size: int | None) -> np.ndarray:
    """Resize to size x size (area interpolation when shrinking). None keeps the image as it is."""
    if size is None or (img.shape[0] == size and img.shape[1] == size):
        return img
    interp = cv2.INTER_AREA if size < min(img.shape[:2]) else cv2.INTER_LINEAR
    out = cv2.resize(img, (size, size), interpolation=interp)
    return out[:, :, None] if out.ndim == 2 else out


def decode_mask(path: str | Path) -> np.ndarray:
    """Ground-truth mask as a bool H x W array (any non-zero pixel is defect)."""
    img = decode_image(path, channels="gray")
    return img[:, :, 0] > 0


def load_images(
    paths: Iterable[str | Path], channels: str = "keep",
    on_skip: Callable[[Skipped], None] | None = None,
) -> tuple[list[np.ndarray], list[str], list[Skipped]]:
    """Decode many files; bad ones are reported (on_skip) and left out, the rest goes on."""
    images: list[np.ndarray] = []
    kept: list[str] = []
    skipped: list[Skipped] = []
    for p in paths:
        try:
            images.append(decode_image(p, channels))
            kept.append(str(p))
        except ImageLoadError as exc:
            item = Skipped(str(p), exc.reason)
            skipped.append(item)
            if on_skip:
                on_skip(item)
    return images, kept, skipped


def common_channels(images: Sequence[np.ndarray]) -> str:
    """'rgb' if any image has colour, else 'gray' — the format a detector trains on."""
    return "rgb" if any(img.shape[2] == 3 for img in images) else "gray"
