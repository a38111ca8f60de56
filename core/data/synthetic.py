"""Built-in demo data: grayscale "machined part" images with heterogeneous complexity (paper 000).

Every image is a flat machined surface (a gentle illumination gradient plus sensor noise) with complex but
normal regions: a band of turned grooves and a threaded hole, whose contrast, pitch and phase vary from image
to image. Those regions are unpredictable patch by patch, so a likelihood model assigns them a large
log-normaliser A — the trap the unregularized score M avoids. Defects are small and sit on the flat surface:
scratches, blowholes and erased squares, each with a pixel mask.

Deterministic for a seed, license-free, generated on first use into a cache folder in the MVTec AD layout.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

DEFECT_TYPES = ("scratch", "blowhole", "erased")
GENERATOR_VERSION = 1


@dataclass(frozen=True)
class DemoSpec:
    size: int = 128
    n_train: int = 60
    n_test_good: int = 20
    n_per_defect: int = 10
    seed: int = 7
    noise: float = 0.01


def _normal_part(rng: np.random.Generator, size: int, noise: float) -> tuple[np.ndarray, np.ndarray]:
    """One defect-free image and the mask of its flat (defect-eligible) area."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(angle) * xx + np.sin(angle) * yy) / size
    img = 0.55 + rng.uniform(-0.05, 0.05) + 0.06 * ramp
    flat = np.ones((size, size), bool)

    # Turned grooves: a band along one side with fine stripes of random pitch, phase and contrast.
    band = int(size * rng.uniform(0.22, 0.3))
    side = rng.integers(4)
    coord = (xx, yy, size - 1 - xx, size - 1 - yy)[side]
    across = (yy, xx, yy, xx)[side]
    in_band = coord < band
    pitch = rng.uniform(3.0, 6.0)
    amp = rng.uniform(0.05, 0.3)
    wobble = rng.uniform(0, 2 * np.pi) + 0.6 * np.sin(across / rng.uniform(6, 14) + rng.uniform(0, 6))
    grooves = 0.45 + amp * np.sin(2 * np.pi * coord / pitch + wobble)
    img = np.where(in_band, grooves, img)
    flat &= coord >= band + 4

    # Threaded hole in the remaining area: dark bore, thread rings of random pitch / phase / contrast.
    radius = size * rng.uniform(0.14, 0.2)
    for _ in range(200):  # rejection sampling: the hole lies inside the image and clear of the band
        cx, cy = rng.uniform(radius + 4, size - radius - 4, size=2)
        centre_coord = (cx, cy, size - 1 - cx, size - 1 - cy)[side]
        if centre_coord >= band + radius + 4:
            break
    r = np.hypot(xx - cx, yy - cy)
    thread = 0.25 + rng.uniform(0.05, 0.25) * np.sin(2 * np.pi * r / rng.uniform(2.5, 5.0)
                                                      + rng.uniform(0, 2 * np.pi))
    thread += 0.08 * np.sin(np.arctan2(yy - cy, xx - cx) * rng.integers(2, 6))
    rim = np.exp(-((r - radius) ** 2) / 2.0) * rng.uniform(0.15, 0.35)
    img = np.where(r < radius, thread, img) + rim
    flat &= r > radius + 5

    img = img + rng.normal(0, noise, img.shape)
    return np.clip(img, 0, 1).astype(np.float32), flat


def _place(rng: np.random.Generator, flat: np.ndarray, margin: int) -> tuple[int, int]:
    """A random point of the flat area at least `margin` pixels from any non-flat pixel."""
    eroded = cv2.erode(flat.astype(np.uint8), np.ones((2 * margin + 1, 2 * margin + 1), np.uint8))
    ys, xs = np.nonzero(eroded)
    if len(ys) == 0:
        ys, xs = np.nonzero(flat)
    k = rng.integers(len(ys))
    return int(ys[k]), int(xs[k])


def _add_defect(rng: np.random.Generator, img: np.ndarray, flat: np.ndarray, kind: str,
                size: int) -> tuple[np.ndarray, np.ndarray]:
    scale = size / 128
    mask = np.zeros(img.shape, np.uint8)
    out = img.copy()
    if kind == "scratch":
        length = rng.uniform(10, 18) * scale
        y, x = _place(rng, flat, int(length / 2) + 2)
        a = rng.uniform(0, np.pi)
        p0 = (int(x - np.cos(a) * length / 2), int(y - np.sin(a) * length / 2))
        p1 = (int(x + np.cos(a) * length / 2), int(y + np.sin(a) * length / 2))
        cv2.line(mask, p0, p1, 1, 1)
        out -= mask * rng.uniform(0.1, 0.16) * rng.choice([-1, 1])
    elif kind == "blowhole":
        rad = max(1, int(round(rng.uniform(1.5, 2.5) * scale)))
        y, x = _place(rng, flat, rad + 3)
        cv2.circle(mask, (x, y), rad, 1, -1)
        out -= mask * rng.uniform(0.15, 0.25)
    elif kind == "erased":
        side = max(2, int(round(rng.uniform(3, 5) * scale)))
        y, x = _place(rng, flat, side + 2)
        mask[y:y + side, x:x + side] = 1
        level = float(np.clip(img[y, x] + rng.choice([-1, 1]) * rng.uniform(0.1, 0.16), 0, 1))
        out = np.where(mask > 0, level, out)  # erased: the texture and noise are gone, a flat grey patch
    else:
        raise ValueError(f"unknown defect type {kind!r}")
    return np.clip(out, 0, 1).astype(np.float32), mask.astype(bool)


def _write_png(path: Path, img: np.ndarray) -> None:
    ok, buf = cv2.imencode(".png", np.round(img * 255).astype(np.uint8))
    if not ok:
        raise OSError(f"{path}: PNG encoding failed")
    path.write_bytes(buf.tobytes())


def generate(root: str | Path, spec: DemoSpec = DemoSpec()) -> Path:
    """Write the demo set to `root` in the MVTec AD layout; returns root."""
    root = Path(root)
    rng = np.random.default_rng(spec.seed)
    layout = [("train/good", spec.n_train, None), ("test/good", spec.n_test_good, None)]
    layout += [(f"test/{kind}", spec.n_per_defect, kind) for kind in DEFECT_TYPES]
    for folder, count, kind in layout:
        (root / folder).mkdir(parents=True, exist_ok=True)
        if kind:
            (root / "ground_truth" / kind).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            img, flat = _normal_part(rng, spec.size, spec.noise)
            if kind:
                img, mask = _add_defect(rng, img, flat, kind, spec.size)
                _write_png(root / "ground_truth" / kind / f"{i:03d}_mask.png", mask.astype(np.float32))
            _write_png(root / folder / f"{i:03d}.png", img)
    (root / "demo.json").write_text(json.dumps({"generator_version": GENERATOR_VERSION, **asdict(spec)}))
    return root


def default_cache_dir() -> Path:
    base = os.environ.get("ANOMALY_INSPECTOR_CACHE") or os.path.join(Path.home(), ".cache", "anomaly-inspector")
    return Path(base)


def demo_dataset(root: str | Path | None = None, spec: DemoSpec = DemoSpec()) -> Path:
    """The demo set, generated on first use (and again if the spec or the generator changed)."""
    root = Path(root) if root else default_cache_dir() / f"demo-v{GENERATOR_VERSION}-{spec.size}-{spec.seed}"
    stamp = root / "demo.json"
    wanted = {"generator_version": GENERATOR_VERSION, **asdict(spec)}
    if stamp.is_file():
        try:
            if json.loads(stamp.read_text()) == wanted:
                return root
        except json.JSONDecodeError:
            pass
    tmp = root.with_name(root.name + f".tmp{os.getpid()}")
    generate(tmp, spec)
    if root.exists():
        shutil.rmtree(root)
    os.replace(tmp, root)
    return root
