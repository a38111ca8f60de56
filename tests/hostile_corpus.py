"""A corpus of hostile and odd image files, written into a folder, each with the outcome the loaders owe it.

"readable": decodes and is scored; "unreadable": named once as a skip, with a reason containing `reason`;
"ignored": not an entry at all (hidden files, folders named like images). Everything is generated: small,
fast, no data files in the repository.
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image


@dataclass(frozen=True)
class Case:
    name: str  # path relative to the corpus folder
    expect: str  # "readable", "unreadable" or "ignored"
    reason: str = ""  # for unreadable: a word the reason must contain
    shape: tuple[int, int, int] | None = None  # for readable: decode_image's H x W x C


def _rng_image(h: int, w: int, c: int = 3, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, (h, w, c), dtype=np.uint8)
    return img[:, :, 0] if c == 1 else img


def _cv(ext: str, img: np.ndarray, params: list[int] | None = None) -> bytes:
    ok, buf = cv2.imencode(ext, img, params or [])
    assert ok, ext
    return buf.tobytes()


def _pil(img: Image.Image, fmt: str, **kw: object) -> bytes:
    bio = io.BytesIO()
    img.save(bio, fmt, **kw)
    return bio.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_bomb(width: int, height: int) -> bytes:
    """A valid-looking PNG whose header claims width x height gray pixels; a few hundred bytes on disk."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\0" * (width + 1) * 4)  # a few rows; a decoder would allocate the whole image first
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def _jpeg_claiming(width: int, height: int) -> bytes:
    data = bytearray(_cv(".jpg", _rng_image(16, 16)))
    sof = data.find(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def _gif_claiming(width: int, height: int) -> bytes:
    data = bytearray(_pil(Image.fromarray(_rng_image(8, 8, 1)).convert("P"), "GIF"))
    data[6:10] = struct.pack("<HH", width, height)
    desc = data.find(b"\x2c", 13)  # image descriptor: the frame claims the same size
    data[desc + 5:desc + 9] = struct.pack("<HH", width, height)
    return bytes(data)


def _bad_crc_png() -> bytes:
    data = bytearray(_cv(".png", _rng_image(32, 32)))
    idat = data.find(b"IDAT")
    length = struct.unpack(">I", data[idat - 4:idat])[0]
    data[idat + 4 + length] ^= 0xFF  # the CRC after the data: the bytes are intact, the check is not
    data[idat + 4 + length // 2] ^= 0xFF  # and the compressed data itself is damaged
    return bytes(data)


def _tiff(arr: np.ndarray) -> bytes:
    return _pil(Image.fromarray(arr), "TIFF")


def _exif_rotated_jpeg() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to show
    return _pil(Image.fromarray(_rng_image(32, 64)), "JPEG", exif=exif)


def _animated_gif() -> bytes:
    frames = [Image.fromarray(_rng_image(24, 24, seed=s)).convert("P") for s in range(3)]
    return _pil(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)


def _float_tiff_with_nan() -> bytes:
    arr = np.linspace(-5, 500, 16 * 16, dtype=np.float32).reshape(16, 16)
    arr[0, 0], arr[0, 1], arr[0, 2] = np.nan, np.inf, -np.inf
    return _tiff(arr)


def write_corpus(folder: Path) -> list[Case]:
    """Write every case below `folder` (created); returns the cases. Unix-only cases are left out elsewhere."""
    folder.mkdir(parents=True, exist_ok=True)
    ok_png = _cv(".png", _rng_image(32, 32))
    ok_jpg = _cv(".jpg", _rng_image(32, 32))
    files: list[tuple[str, str, str, bytes | Callable[[], bytes], tuple[int, int, int] | None]] = [
        # -- readable: plain, deep, odd modes
        ("ok_gray.png", "readable", "", lambda: _cv(".png", _rng_image(32, 32, 1)), (32, 32, 1)),
        ("ok_rgb.png", "readable", "", ok_png, (32, 32, 3)),
        ("ok.jpg", "readable", "", ok_jpg, (32, 32, 3)),
        ("ok.bmp", "readable", "", lambda: _cv(".bmp", _rng_image(32, 32)), (32, 32, 3)),
        ("ok.tif", "readable", "", lambda: _cv(".tif", _rng_image(32, 32)), (32, 32, 3)),
        ("ok.webp", "readable", "", lambda: _cv(".webp", _rng_image(32, 32)), (32, 32, 3)),
        ("ok.pgm", "readable", "", lambda: _cv(".pgm", _rng_image(32, 32, 1)), (32, 32, 1)),
        ("progressive.jpg", "readable", "",
         lambda: _cv(".jpg", _rng_image(32, 32), [cv2.IMWRITE_JPEG_PROGRESSIVE, 1]), (32, 32, 3)),
        ("gray16.png", "readable", "", lambda: _cv(".png", (_rng_image(32, 32, 1).astype(np.uint16) * 257)),
         (32, 32, 1)),
        ("rgb16.png", "readable", "", lambda: _cv(".png", _rng_image(32, 32).astype(np.uint16) * 257), (32, 32, 3)),
        ("gray16.tif", "readable", "", lambda: _cv(".tif", _rng_image(32, 32, 1).astype(np.uint16) * 257),
         (32, 32, 1)),
        ("float01.tif", "readable", "", lambda: _tiff(np.random.default_rng(1).random((16, 16), np.float32)),
         (16, 16, 1)),
        ("float_nan_inf.tif", "readable", "", _float_tiff_with_nan, (16, 16, 1)),
        ("int32.tif", "readable", "", lambda: _tiff(np.arange(256, dtype=np.int32).reshape(16, 16) * 1000),
         (16, 16, 1)),
        ("cmyk.jpg", "readable", "", lambda: _pil(Image.fromarray(_rng_image(32, 32)).convert("CMYK"), "JPEG"),
         (32, 32, 3)),
        ("palette.png", "readable", "", lambda: _pil(Image.fromarray(_rng_image(32, 32)).convert("P"), "PNG"),
         (32, 32, 3)),
        ("palette_transparent.png", "readable", "",
         lambda: _pil(Image.fromarray(_rng_image(32, 32)).convert("P"), "PNG", transparency=0), (32, 32, 3)),
        ("rgba.png", "readable", "", lambda: _cv(".png", _rng_image(32, 32, 4)), (32, 32, 3)),
        ("gray_alpha.png", "readable", "", lambda: _pil(Image.fromarray(_rng_image(32, 32, 2), "LA"), "PNG"), None),
        ("one_bit.png", "readable", "", lambda: _pil(Image.fromarray(_rng_image(32, 32, 1)).convert("1"), "PNG"),
         (32, 32, 1)),
        ("animated.gif", "readable", "", _animated_gif, (24, 24, 3)),
        ("exif_rotated.jpg", "readable", "", _exif_rotated_jpeg, (64, 32, 3)),
        ("a png named.jpg", "readable", "", ok_png, (32, 32, 3)),
        ("a jpeg named.png", "readable", "", ok_jpg, (32, 32, 3)),
        ("prüfteil 名前.png", "readable", "", ok_png, (32, 32, 3)),
        ("  spaces  .png", "readable", "", ok_png, (32, 32, 3)),
        ("one_pixel.png", "readable", "", lambda: _cv(".png", _rng_image(1, 1)), (1, 1, 3)),
        ("long_strip.png", "readable", "", lambda: _cv(".png", _rng_image(2, 600, 1)), (2, 600, 1)),
        # -- unreadable
        ("zero.png", "unreadable", "empty", b"", None),
        ("truncated.png", "unreadable", "truncated", ok_png[: len(ok_png) // 2], None),
        ("truncated.jpg", "unreadable", "truncated", ok_jpg[: len(ok_jpg) // 2], None),
        ("header_only.png", "unreadable", "truncated", ok_png[:33], None),
        ("signature_only.png", "unreadable", "", ok_png[:8], None),
        ("page.jpg", "unreadable", "HTML",
         b"<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head><body>nope</body></html>\n", None),
        ("notes.png", "unreadable", "text", b"this is not an image\n" * 10, None),
        ("noise.png", "unreadable", "not an image", bytes(np.random.default_rng(5).integers(0, 256, 4096,
                                                                                             dtype=np.uint8)), None),
        ("drawing.png", "unreadable", "SVG",
         b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="5" height="5"/></svg>', None),
        ("document.tif", "unreadable", "PDF", b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n", None),
        ("bad_crc.png", "unreadable", "corrupt", _bad_crc_png, None),
        ("bomb_60000.png", "unreadable", "60000 x 60000", lambda: png_bomb(60000, 60000), None),
        ("bomb_wide.png", "unreadable", "over the", lambda: png_bomb(1_000_000, 300), None),
        ("bomb.jpg", "unreadable", "over the", lambda: _jpeg_claiming(65000, 65000), None),
        ("bomb.gif", "unreadable", "over the", lambda: _gif_claiming(65535, 65535), None),
        ("zero_size.png", "unreadable", "", lambda: png_bomb(0, 0), None),
        # -- ignored: not entries
        (".hidden.png", "ignored", "", ok_png, None),
        ("._resource_fork.png", "ignored", "", b"\x00\x05\x16\x07" + b"\0" * 60, None),
        (".DS_Store", "ignored", "", b"\0\0\0\1Bud1" + b"\0" * 40, None),
    ]
    cases: list[Case] = []
    for name, expect, reason, content, shape in files:
        (folder / name).write_bytes(content() if callable(content) else content)
        cases.append(Case(name, expect, reason, shape))
    (folder / "folder_named.png").mkdir()
    (folder / "folder_named.jpg").mkdir()
    cases += [Case("folder_named.png", "ignored"), Case("folder_named.jpg", "ignored")]
    if os.name == "posix":
        (folder / "dangling_link.png").symlink_to(folder / "does_not_exist.png")
        (folder / "loop_link.png").symlink_to(folder / "loop_link.png")
        (folder / "good_link.png").symlink_to(folder / "ok_rgb.png")
        cases += [Case("dangling_link.png", "unreadable", "broken symbolic link"),
                  Case("loop_link.png", "unreadable", "loop"),
                  Case("good_link.png", "readable", shape=(32, 32, 3))]
        os.mkfifo(folder / "pipe.png")  # opening a FIFO to read it would wait forever for a writer
        cases.append(Case("pipe.png", "unreadable", "not a regular file"))
        locked = folder / "no_permission.png"
        locked.write_bytes(ok_png)
        locked.chmod(0)
        # root reads any file: then the case is an ordinary readable image
        if os.access(locked, os.R_OK):
            cases.append(Case("no_permission.png", "readable", shape=(32, 32, 3)))
        else:
            cases.append(Case("no_permission.png", "unreadable", "permission denied"))
    return cases


def readable(cases: list[Case]) -> list[Case]:
    return [c for c in cases if c.expect == "readable"]


def unreadable(cases: list[Case]) -> list[Case]:
    return [c for c in cases if c.expect == "unreadable"]


def restore_permissions(folder: Path) -> None:
    """Let pytest's tmp cleanup delete the locked file."""
    locked = folder / "no_permission.png"
    if locked.exists() and not locked.is_symlink():
        locked.chmod(0o644)
