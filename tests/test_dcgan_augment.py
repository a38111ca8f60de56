"""DCGAN augmentation (paper 004): the DCGAN draws images of the right shape and range, `augment=dcgan` really
puts generated images into the autoencoders' training batches (and only then), on its share of the time
budget, and a grid of generated samples is kept with the model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from core.detectors.autoencoders.cae import ConvAE
from core.detectors.gan.dcgan import DCGAN, STAGE_DCGAN, DcganAugmenter, generated_per_batch
from core.detectors.gan.samples import decode_grid
from core.detectors.registry import create, detector_class
from core.modelio import load_detector

TINY_GAN = {"augment_size": 16, "augment_channels": 4, "augment_latent": 8, "augment_epochs": 3}
MARK = 0.123  # the value of every pixel of a stand-in "generated" image


def images(n: int, seed: int, side: int = 32, channels: int = 3) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.random((side, side, channels), dtype=np.float32) * 0.5 + 0.25 for _ in range(n)]


def test_the_dcgan_generates_images_of_the_right_shape_and_range() -> None:
    gen = torch.Generator().manual_seed(0)
    gan = DCGAN(3, 16, latent=8, base=4, device=torch.device("cpu"))
    assert any(isinstance(m, nn.BatchNorm2d) for m in gan.D.modules())  # paper 004: batchnorm in both
    data = torch.rand(10, 3, 16, 16, generator=gen) * 2 - 1
    losses: list[dict] = []
    report = gan.fit(data, epochs=3, batch=4, time_budget=0, gen=gen, progress=lambda d, t, i: losses.append(i),
                     should_stop=lambda: False)
    assert report.steps == 6 and report.stopped_by == "done"
    assert all(i["stage"] == STAGE_DCGAN and np.isfinite(i["discriminator_loss"]) and
               np.isfinite(i["generator_loss"]) for i in losses)
    out = gan.generate(5, gen)
    assert out.shape == (5, 3, 16, 16) and float(out.min()) >= -1 and float(out.max()) <= 1
    assert float(out.std()) > 0
    aug = DcganAugmenter({**TINY_GAN, "augment_share": 0.25, "batch_size": 4}, 3, 32, torch.device("cpu"))
    aug.gan = gan
    up = aug.images(4, gen)  # scaled to the autoencoder's side, in its [0, 1] image space
    assert up.shape == (4, 3, 32, 32) and float(up.min()) >= 0 and float(up.max()) <= 1


def test_generated_per_batch_makes_the_share_of_each_batch() -> None:
    assert generated_per_batch(16, 0.0) == 0
    assert generated_per_batch(16, 0.25) == 5  # 5 of 21
    assert generated_per_batch(4, 0.5) == 4
    assert generated_per_batch(2, 0.01) == 1


def recording_batches(monkeypatch: pytest.MonkeyPatch) -> list[torch.Tensor]:
    """Every batch the autoencoder's training loss sees (in network space)."""
    seen: list[torch.Tensor] = []
    original = ConvAE.training_loss

    def spy(self: ConvAE, x: torch.Tensor) -> torch.Tensor:
        seen.append(x.detach().clone())
        return original(self, x)

    monkeypatch.setattr(ConvAE, "training_loss", spy)
    return seen


def test_augment_dcgan_feeds_generated_images_into_every_training_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = recording_batches(monkeypatch)
    # Stand-in generated images with a known value, so the test can find them in the batches.
    monkeypatch.setattr(DcganAugmenter, "images", lambda self, n, gen: torch.full((n, 3, 32, 32), MARK))
    settings = {**ConvAE.quick_settings(), "epochs": 3, "batch_size": 4, "hflip": False}
    det = create("cae", **settings, augment="dcgan", augment_share=0.5, **TINY_GAN)
    det.fit(images(8, seed=0))
    marked = (MARK - 0.5) / 0.5  # the CAE's input normalisation (mean 0.5, std 0.5)
    assert len(seen) == 6  # 3 epochs x 2 batches
    for x in seen:
        assert x.shape[0] == 8  # 4 real + 4 generated: half of each batch, as augment_share says
        assert torch.allclose(x[4:], torch.full_like(x[4:], marked))
        assert not torch.isclose(x[:4], torch.full_like(x[:4], marked)).all()
    assert det.metadata["augment"]["generated_fed"] == 24 and det.metadata["augment"]["per_batch"] == 4

    seen.clear()  # the same detector without augmentation sees the real images only
    plain = create("cae", **settings)
    plain.fit(images(8, seed=0))
    assert [x.shape[0] for x in seen] == [4] * 6
    assert "augment" not in plain.metadata and "sample_grid" not in plain.metadata


def test_the_real_dcgan_output_reaches_the_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = recording_batches(monkeypatch)
    fed: list[torch.Tensor] = []
    original = DcganAugmenter.extra

    def spy(self: DcganAugmenter, batch: int, gen: torch.Generator) -> torch.Tensor:
        out = original(self, batch, gen)
        fed.append(out.clone())
        return out

    monkeypatch.setattr(DcganAugmenter, "extra", spy)
    det = create("cae", **{**ConvAE.quick_settings(), "epochs": 2, "batch_size": 4, "hflip": False},
                 augment="dcgan", augment_share=0.2, **TINY_GAN)
    det.fit(images(8, seed=0))
    assert len(fed) == len(seen) == 4
    for x, g in zip(seen, fed, strict=True):
        assert g.shape == (1, 3, 32, 32)
        torch.testing.assert_close(x[4:], (g - 0.5) / 0.5)


@pytest.mark.parametrize("name", ["nicae", "kdcae", "decentralization"])
def test_every_autoencoder_takes_the_setting(name: str) -> None:
    det = create(name, **detector_class(name).quick_settings(), augment="dcgan", **TINY_GAN)
    det.fit(images(8, seed=0))
    assert det.metadata["augment"]["generated_fed"] > 0
    assert np.isfinite(det.score(images(2, seed=1)).scores).all()


def test_the_dcgan_trains_on_its_share_of_the_time_budget() -> None:
    seen: list[str] = []
    det = create("cae", **{**ConvAE.quick_settings(), "epochs": 100000, "time_budget": 1.0}, augment="dcgan",
                 augment_budget_share=0.3, **{**TINY_GAN, "augment_epochs": 100000})
    report = det.fit(images(8, seed=0), progress=lambda d, t, i: seen.append(i.get("stage", "")))
    dcgan = det.metadata["augment"]["dcgan"]
    assert dcgan["stopped_by"] == "time_budget" and 0.3 <= dcgan["seconds"] < 1.0  # one step of overshoot
    assert report.stopped_by == "time_budget" and 1.0 <= report.seconds < 2.5
    assert seen[0] == STAGE_DCGAN and seen[-1] != STAGE_DCGAN  # then the autoencoder trains


def test_a_grid_of_generated_samples_is_kept_with_the_model(tmp_path: Path) -> None:
    det = create("cae", **ConvAE.quick_settings(), augment="dcgan", **TINY_GAN)
    det.fit(images(8, seed=0))
    det.save(tmp_path / "cae.ai")
    again = load_detector(tmp_path / "cae.ai")
    grid = again.metadata["sample_grid"]
    assert grid["n"] == 16 and grid["sample_shape"] == [16, 16] and "DCGAN" in grid["caption"]
    pixels = decode_grid(grid["png_base64"])
    assert pixels.shape == (70, 70, 3)
    assert again.metadata["augment"]["generated_fed"] == det.metadata["augment"]["generated_fed"]
    np.testing.assert_array_equal(det.score(images(2, seed=1)).scores, again.score(images(2, seed=1)).scores)
