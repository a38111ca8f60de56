"""Pretrained-feature detectors (PatchCore and PaDiM class) on the packaged EfficientNet-Lite0 weights."""

from __future__ import annotations

import math
import socket
from pathlib import Path

import numpy as np
import pytest
import torch

from core import metrics
from core.data.images import decode_image
from core.data.synthetic import DemoSpec, generate
from core.detectors.base import Cancelled, DetectorError
from core.detectors.features.backbone import backbone_identity
from core.detectors.features.padim import PaDiM
from core.detectors.features.patchcore import PatchCore, greedy_coreset, nearest_distances
from core.detectors.registry import available, create, detector_class
from core.evaluate import evaluate
from core.modelio import load_detector
from core.nets.efficientnet_lite import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    BackboneError,
    EfficientNetLite0,
    pretrained_lite0,
)

SKLEARN_IMAGES = Path(__import__("sklearn.datasets").datasets.__file__).parent / "images"


@pytest.fixture(scope="module")
def demo96(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small demo set (96 px; 14 train, 6 good and 3 per defect type in test)."""
    return generate(tmp_path_factory.mktemp("demo96"), DemoSpec(size=96, n_train=14, n_test_good=6,
                                                                n_per_defect=3, seed=5))


def _images(root: Path, split: str = "train/good") -> list[np.ndarray]:
    return [decode_image(p) for p in sorted((root / split).glob("*.png"))]


# -- coreset ----------------------------------------------------------------------------------------

def _covering_radius(x: torch.Tensor, idx: torch.Tensor) -> float:
    return float(torch.cdist(x, x[idx]).min(1).values.max())


def test_coreset_picks_k_distinct_points_and_covers_better_than_random() -> None:
    gen = torch.Generator().manual_seed(0)
    # Uneven clusters: random picks land mostly in the big ones and leave small ones uncovered.
    sizes = [1500, 600, 200, 60, 20, 8, 4, 2]
    centres = torch.randn(len(sizes), 8, generator=gen) * 6
    x = torch.cat([c + torch.randn(n, 8, generator=gen) for c, n in zip(centres, sizes, strict=True)])
    k = 40
    idx = greedy_coreset(x, k, seed=1)
    assert len(idx) == k and len(set(idx.tolist())) == k
    greedy_r = _covering_radius(x, idx)
    random_r = [_covering_radius(x, torch.randperm(len(x), generator=gen)[:k]) for _ in range(20)]
    assert greedy_r < 0.7 * min(random_r), (greedy_r, min(random_r))


def test_pruned_coreset_equals_plain_farthest_point_order() -> None:
    x = torch.randn(1500, 16, generator=torch.Generator().manual_seed(2))
    idx = greedy_coreset(x, 120, seed=4)
    start = int(idx[0])
    plain, min_d = [start], ((x - x[start]) ** 2).sum(1)
    for _ in range(119):
        nxt = int(min_d.argmax())
        plain.append(nxt)
        min_d = torch.minimum(min_d, ((x - x[nxt]) ** 2).sum(1))
    assert idx.tolist() == plain


def test_nearest_distances_match_cdist_in_small_chunks() -> None:
    gen = torch.Generator().manual_seed(3)
    q, bank = torch.randn(333, 12, generator=gen), torch.randn(500, 12, generator=gen)
    got = nearest_distances(q, bank, chunk_mb=0.05)  # forces many chunks
    torch.testing.assert_close(got, torch.cdist(q, bank).min(1).values, atol=1e-4, rtol=1e-4)


# -- backbone -------------------------------------------------------------------------------------

def _classify(net: EfficientNetLite0, name: str) -> list[int]:
    import cv2

    img = decode_image(SKLEARN_IMAGES / name, "rgb")
    h, w = img.shape[:2]
    s = min(h, w)
    img = cv2.resize(img[(h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s], (224, 224),
                     interpolation=cv2.INTER_AREA)
    x = torch.from_numpy(img).permute(2, 0, 1)[None]
    x = (x - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    with torch.inference_mode():
        return net(x)[0].topk(3).indices.tolist()


@pytest.mark.skipif(not (SKLEARN_IMAGES / "flower.jpg").is_file(), reason="scikit-learn sample images absent")
def test_packaged_weights_are_really_used() -> None:
    """The loaded network recognises scikit-learn's bundled photos (a daisy; a Chinese temple), which a
    randomly initialised one cannot: this fails if the weights, the architecture or the padding are wrong."""
    net = pretrained_lite0()
    assert _classify(net, "flower.jpg")[0] == 985  # daisy
    assert {698, 442} & set(_classify(net, "china.jpg")[:2])  # palace, bell cote
    torch.manual_seed(0)
    random_net = EfficientNetLite0().eval()
    assert _classify(random_net, "flower.jpg")[0] != 985


def test_weights_load_strictly(tmp_path: Path) -> None:
    net = pretrained_lite0()
    state = net.state_dict()
    state.pop("_blocks.3._bn1.running_var")
    bad = tmp_path / "missing.pth"
    torch.save(state, bad)
    with pytest.raises(BackboneError, match="missing"):
        pretrained_lite0(bad)
    state = net.state_dict()
    state["_conv_stem.weight"] = torch.zeros(8, 3, 3, 3)
    torch.save(state, bad)
    with pytest.raises(BackboneError, match="do not fit"):
        pretrained_lite0(bad)


# -- detectors --------------------------------------------------------------------------------------

def test_registered_for_cli_and_window() -> None:
    assert {"patchcore", "padim"} <= set(available())
    assert detector_class("patch-core") is PatchCore
    for cls in (PatchCore, PaDiM):
        for p in cls.PARAMS:  # the window builds its form from these; every default must pass its own check
            p.check(p.default)


def test_patchcore_ranks_synthetic_defects_above_normals(demo96: Path) -> None:
    # Stride 8 + 16: the demo's defects are small for a 96 px part (the default s16 + s32, best on the real dev
    # categories, gets image AUROC 0.76 and pixel AUROC 0.94 here; docs/benchmarks.md "backbones and stages").
    report, _, result, test = evaluate(demo96, "patchcore", {"image_size": 224, "layers": "s8+s16"},
                                        log=lambda m: None, keep_maps=True)
    assert np.isfinite(result.scores).all()
    assert report["image_auroc"]["score"] >= 0.8, report["image_auroc"]
    assert report["pixel_auroc"]["score"] >= 0.95, report["pixel_auroc"]
    labels = np.array([it.label == "defect" for it in test.items])
    assert np.median(result.scores[labels]) > np.median(result.scores[~labels])
    # Maps: pixel maps at the resized input, placed on the original image by their geometry.
    g = result.geometry[0]
    assert (g.patch, g.stride, g.input_shape, g.original_shape) == (1, 1, (224, 224), (96, 96))
    assert result.maps["score"][0].shape == (224, 224) and result.maps["score"][0].dtype == np.float32
    assert all(np.isfinite(m).all() for m in result.maps["score"])


def test_padim_maps_find_synthetic_defects(demo96: Path) -> None:
    """PaDiM models each grid position separately, so it needs aligned parts; the demo parts are turned at
    random, which defeats its image score but not its maps (the defect pixels still stand out)."""
    # Its pixel metrics come from the maps evaluate spooled while scoring (core.pixel_eval), none kept.
    report, _, result, _ = evaluate(demo96, "padim", {"image_size": 160, "n_features": 60}, log=lambda m: None)
    assert not any(result.maps.values())
    assert np.isfinite(result.scores).all()
    assert report["pixel_auroc"]["score"] >= 0.85, report["pixel_auroc"]


def test_no_network_access_while_fitting_and_scoring(monkeypatch: pytest.MonkeyPatch, tiny_demo: Path) -> None:
    attempts: list[tuple] = []

    def refuse(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        attempts.append(args)
        raise OSError("network access attempted during a test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    import core.detectors.features.backbone as fb

    monkeypatch.setattr(fb, "_NETS", {})  # force the weights to be loaded again, under the block
    images = _images(tiny_demo)[:4]
    for det in (PatchCore(image_size=64), PaDiM(image_size=64)):
        det.fit(images)
        assert np.isfinite(det.score(images).scores).all()
    assert attempts == []


def test_pool_is_bounded_and_bank_is_the_coreset_share(tiny_demo: Path) -> None:
    images = _images(tiny_demo)  # 12 images x 8 x 8 grid cells at 64 px = 768 patches
    det = PatchCore(image_size=64, layers="s8+s16", max_pool=200, coreset_ratio=0.1)
    calls: list[tuple[int, int]] = []
    det.fit(images, progress=lambda d, t, info: calls.append((d, t)))
    assert det.metadata["n_patches_pooled"] == 200
    assert det.metadata["bank_size"] == math.ceil(0.1 * 200) == len(det.bank)
    assert calls[-1][0] == calls[-1][1] and all(a[0] <= b[0] for a, b in zip(calls, calls[1:], strict=False))
    # Every bank row is a training feature row (of the images as the detector saw them, lighting-normalised):
    # no averaging or synthesis.
    seen = det._normalised(images)[:12]
    feats = next(det.iter_features(seen, progress=lambda *a: None, should_stop=lambda: False))[1]
    rows = feats.permute(0, 2, 3, 1).reshape(-1, feats.shape[1])
    exact = torch.cdist(det.bank, rows, compute_mode="donot_use_mm_for_euclid_dist")
    assert float(exact.min(1).values.max()) < 1e-5


def test_cancel_stops_fit_and_score(tiny_demo: Path) -> None:
    images = _images(tiny_demo)
    with pytest.raises(Cancelled):
        PatchCore(image_size=64, batch_size=2).fit(images, should_stop=lambda: True)
    padim = PaDiM(image_size=64)
    padim.fit(images[:3])
    with pytest.raises(Cancelled):
        padim.score(images, should_stop=lambda: True)


@pytest.mark.parametrize("name", ["patchcore", "padim"])
def test_save_load_roundtrip_and_backbone_check(tmp_path: Path, tiny_demo: Path, name: str) -> None:
    images = _images(tiny_demo)
    det = create(name, image_size=64, seed=3)
    det.fit(images)
    before = det.score(images[:4])
    path = tmp_path / f"{name}.pt"
    det.save(path)
    state = torch.load(path, weights_only=True)
    assert not any(k.startswith("_blocks") or k.startswith("_conv") for k in state)  # no backbone inside
    assert path.stat().st_size < 10_000_000  # the backbone weights alone are 17 MB (padim at 64 px: 6 MB)
    loaded = load_detector(path)
    after = loaded.score(images[:4])
    np.testing.assert_allclose(after.scores, before.scores, rtol=1e-5)
    assert loaded.metadata["backbone_sha256"] == backbone_identity()["backbone_sha256"]

    # A model whose backbone weights differ from the installed ones is refused in plain words.
    from core.modelio import read_model_metadata, save_detector

    loaded.metadata["backbone_sha256"] = "0" * 64
    save_detector(loaded, tmp_path / "other.pt")
    with pytest.raises(DetectorError, match="trained on backbone weights"):
        load_detector(tmp_path / "other.pt")
    meta, _ = read_model_metadata(tmp_path / "other.pt")
    assert meta["metadata"]["backbone"] == "efficientnet-lite0"


def test_padim_shrinkage_keeps_few_images_invertible(tiny_demo: Path) -> None:
    images = _images(tiny_demo)[:2]  # 2 images, 100 channels: the sample covariance is singular
    det = PaDiM(image_size=64)
    det.fit(images)
    assert torch.isfinite(det.precision).all()
    scores = det.score(images).scores
    assert np.isfinite(scores).all()


def _stripes(seed: int, vertical: bool, size: int = 64) -> np.ndarray:
    rng = np.random.default_rng(seed)
    axis = np.arange(size, dtype=np.float32)
    wave = 0.5 + 0.3 * np.sin(axis * 0.8 + rng.uniform(0, 6.28))
    img = np.tile(wave[None, :] if vertical else wave[:, None], (size, 1) if vertical else (1, size))
    return np.clip(img[:, :, None] + 0.02 * rng.standard_normal((size, size, 1)), 0, 1).astype(np.float32)


def test_padim_clusters_model_a_mixed_population(tmp_path: Path) -> None:
    """Two part variants in one training set (vertical and horizontal stripes, as mono and poly solar cells):
    each variant's images form a cluster with its own Gaussians, each image is scored against its own
    variant's, and an image that is half one variant, half the other fits neither."""
    train = [_stripes(i, i % 2 == 0) for i in range(16)]
    good = [_stripes(100 + i, i % 2 == 0) for i in range(6)]
    mixed = []
    for i in range(6):
        a, b = _stripes(200 + i, True), _stripes(300 + i, False)
        mixed.append(np.concatenate([a[:, :32], b[:, 32:]], axis=1))
    labels = np.array([0] * 6 + [1] * 6, bool)
    one = PaDiM(image_size=64, batch_size=8)
    one.fit(train)
    two = PaDiM(image_size=64, batch_size=8, clusters=2)
    two.fit(train)
    assert sorted(two.metadata["cluster_sizes"]) == [8, 8]
    s_one, s_two = one.score(good + mixed).scores, two.score(good + mixed).scores
    assert metrics.auroc(labels, s_two) == 1.0
    assert metrics.auroc(labels, s_one) >= 0.5  # (the benefit shows on real data: elpv, docs/benchmarks.md)
    descriptors = two._descriptor(next(two.iter_features(good, progress=lambda *a: None,
                                                         should_stop=lambda: False))[1])
    clusters = torch.cdist(descriptors, two.centroids).argmin(1).tolist()
    assert clusters[0::2] == [clusters[0]] * 3 and clusters[1::2] == [1 - clusters[0]] * 3
    two.save(tmp_path / "two.ai")
    again = load_detector(tmp_path / "two.ai")
    np.testing.assert_allclose(again.score(good).scores, two.score(good).scores, rtol=1e-5)
