"""`anomaly-inspector --self-test`: prove that this install (a developer's or the desktop bundle) can do the
whole job: open the window, make data, train, score, label, export and load the pretrained backbone.

Each step prints its name, its time and what it checked; the first failure stops the run, names the step and
exits 1. Everything goes to a temporary folder that is removed afterwards; the user's settings and stores are
not touched. The window runs offscreen, so the test works without a display (and in CI).

ANOMALY_INSPECTOR_SELF_TEST_FAIL=<step> makes that step fail on purpose, to check the failure report of a
bundle without breaking it.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

FAIL_ENV = "ANOMALY_INSPECTOR_SELF_TEST_FAIL"

# A CPU-sized patch VAE for the 64 px self-test images (seconds, not minutes; the same as the tests' TINY_VAE).
TINY_VAE: dict[str, Any] = {"patch_size": 32, "stride": 16, "n_conv": 4, "base_channels": 8, "latent": 8,
                            "epochs": 2, "patches_per_image": 4, "batch_size": 32}


class SelfTestError(Exception):
    """A check inside a step did not hold."""


@dataclass
class Context:
    """What the steps hand each other."""

    tmp: Path
    values: dict[str, Any] = field(default_factory=dict)


def process_age() -> float | None:
    """Seconds since this process started (Linux /proc), so "window shown" counts the bundle's own start-up
    and the imports too, not only the self-test's share."""
    try:
        start_ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return uptime - start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def step_window(ctx: Context) -> str:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    from inspector_gui.about import window_title
    from inspector_gui.app import create_window

    settings = QSettings(str(ctx.tmp / "settings.ini"), QSettings.Format.IniFormat)
    app, window = create_window(None, settings=settings)
    window.resize(1200, 800)
    window.show()
    deadline = time.monotonic() + 10
    while not window.isVisible() or window.windowHandle() is None or not window.windowHandle().isExposed():
        app.processEvents()
        if time.monotonic() > deadline:
            raise SelfTestError("the window did not appear within 10 s")
    app.processEvents()
    age = process_age()
    title = window.windowTitle()
    if title != window_title():
        raise SelfTestError(f"window title {title!r}, expected {window_title()!r}")
    if window.windowIcon().isNull():
        raise SelfTestError("the window has no icon (resources/icons missing?)")
    platform = QApplication.platformName()
    window.close()
    window.deleteLater()
    app.processEvents()
    shown = f"; shown {age:.2f} s after the process started" if age is not None else ""
    return f"{title!r} on the {platform} platform{shown}"


def step_demo_data(ctx: Context) -> str:
    from core.data.images import load_images
    from core.data.synthetic import DemoSpec, generate

    root = generate(ctx.tmp / "demo", DemoSpec(size=64, n_train=12, n_test_good=4, n_per_defect=2, seed=3))
    train, _, bad_train = load_images(sorted((root / "train" / "good").glob("*.png")))
    test, _, bad_test = load_images(sorted((root / "test").glob("*/*.png")))
    if len(train) != 12 or len(test) != 10 or bad_train or bad_test:
        raise SelfTestError(f"{root}: expected 12 training and 10 test images, decoded {len(train)} and "
                            f"{len(test)} ({len(bad_train) + len(bad_test)} unreadable)")
    ctx.values.update(root=root, train=train, test=test)
    return f"{len(train) + len(test)} images (64 px) in the MVTec layout, decoded"


def step_train(ctx: Context) -> str:
    from core.detectors.registry import create

    # The registry and the Detector interface directly: the same fit the window's Train button runs.
    detector = create("vae", **TINY_VAE)
    detector.fit(ctx.values["train"])
    ctx.values["detector"] = detector
    return f"patch VAE, {TINY_VAE['epochs']} epochs on {len(ctx.values['train'])} good images"


def step_score(ctx: Context) -> str:
    import numpy as np

    images = ctx.values["train"] + ctx.values["test"]
    result = ctx.values["detector"].score(images)
    scores = np.asarray(result.scores, dtype=float)
    if scores.shape != (len(images),) or not np.isfinite(scores).all():
        raise SelfTestError(f"expected {len(images)} finite scores, got shape {scores.shape}")
    ctx.values["scores"] = scores
    return f"{len(scores)} scores in [{scores.min():.4g}, {scores.max():.4g}]"


def step_label(ctx: Context) -> str:
    from core.store import Store

    store_path = ctx.tmp / "self-test.h5"
    with Store.create(store_path, ctx.values["root"]) as store:
        added = store.add_folder(ctx.values["root"] / "test")
        image_id = store.image_id(ctx.values["root"] / "test" / "scratch" / "000.png")
        store.set_label(image_id, "defect", defect_type="scratch", note="self-test")
        store.set_label(store.image_id(ctx.values["root"] / "test" / "good" / "000.png"), "good")
    with Store.open(store_path, readonly=True) as store:
        record = store.label(image_id)
    if (record.label, record.defect_type, record.source) != ("defect", "scratch", "human"):
        raise SelfTestError(f"{store_path}: read back {record.label}/{record.defect_type}/{record.source}, "
                            "expected defect/scratch/human")
    ctx.values["store"] = store_path
    return f"{added.added} images in a store; a defect label written and read back"


def step_export(ctx: Context) -> str:
    from core.export import open_and_export

    out = ctx.tmp / "export"
    result = open_and_export(ctx.values["store"], out)
    exported = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    if result.n_images != 2 or not (out / "manifest.csv").is_file():
        raise SelfTestError(f"{out}: expected 2 images and manifest.csv, found {exported}")
    return f"{result.n_images} images, {result.n_masks} mask(s) and manifest.csv"


def step_backbone(ctx: Context) -> str:
    import torch

    from core.nets.efficientnet_lite import VARIANTS, pretrained, weights_path

    loaded = []
    for variant in VARIANTS:  # lite0, lite1, lite2: the feature detectors' backbone setting
        net = pretrained(variant)
        with torch.no_grad():
            logits = net(torch.zeros(1, 3, 64, 64))
        title = VARIANTS[variant].title
        if tuple(logits.shape) != (1, 1000) or not torch.isfinite(logits).all():
            raise SelfTestError(f"{title} gave {tuple(logits.shape)}, expected (1, 1000) finite logits")
        loaded.append(f"{title} ({weights_path(variant).name})")
    return f"ImageNet weights of {', '.join(loaded)} load and run"


Step = tuple[str, Callable[[Context], str]]
STEPS: list[Step] = [
    ("window", step_window),
    ("demo data", step_demo_data),
    ("train", step_train),
    ("score", step_score),
    ("label", step_label),
    ("export", step_export),
    ("backbone", step_backbone),
]


def run_self_test(out: TextIO | None = None, steps: list[Step] | None = None) -> int:
    """Run every step; 0 when all pass, 1 at the first failure (its name printed on stderr and stdout)."""
    out = out or sys.stdout
    steps = STEPS if steps is None else steps
    forced = os.environ.get(FAIL_ENV, "")

    def say(text: str) -> None:
        print(text, file=out, flush=True)

    from core.versions import version_lines

    say("self-test: " + "; ".join(version_lines()))
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="anomaly-inspector-self-test-") as tmp:
        ctx = Context(Path(tmp))
        for number, (name, run) in enumerate(steps, 1):
            t0 = time.perf_counter()
            try:
                if name == forced:
                    raise SelfTestError(f"failed on purpose ({FAIL_ENV}={forced})")
                detail = run(ctx)
            except Exception as exc:  # any failure is reported by step, the traceback for the curious
                seconds = time.perf_counter() - t0
                say(f"[{number}/{len(steps)}] {name}: FAILED after {seconds:.2f} s: {type(exc).__name__}: {exc}")
                traceback.print_exc(file=out)
                print(f"self-test FAILED at step {number} '{name}': {exc}", file=sys.stderr, flush=True)
                say(f"self-test FAILED at step {number} '{name}'")
                return 1
            say(f"[{number}/{len(steps)}] {name}: ok in {time.perf_counter() - t0:.2f} s: {detail}")
    say(f"self-test passed: {len(steps)} steps in {time.perf_counter() - started:.2f} s")
    return 0
