"""f-AnoGAN (paper 002): the score is its formula, WGAN-GP training moves the critic, both stages share the time
budget and report their losses, the sample grid of G(z) and the weights survive a model file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from core.detectors.gan.fanogan import STAGE_ENCODER, STAGE_GAN, FAnoGAN, stage_budgets
from core.detectors.gan.samples import decode_grid
from core.detectors.registry import create, detector_class, parse_settings
from core.modelio import load_detector
from core.nets.gan import ConvCritic, Generator, critic_loss, gradient_penalty, sample_latent


def images(n: int, seed: int, side: int = 16, channels: int = 1) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.random((side, side, channels), dtype=np.float32) for _ in range(n)]


# ---------------------------------------------------------------- the score is A(x)
class ToyEncoder(nn.Module):
    def __init__(self, w: torch.Tensor, b: torch.Tensor):
        super().__init__()
        self.w, self.b = w, b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x.flatten(1) @ self.w.T + self.b)


class ToyGenerator(nn.Module):
    def __init__(self, w: torch.Tensor, side: int):
        super().__init__()
        self.w, self.side = w, side

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.tanh(z @ self.w.T).view(-1, 1, self.side, self.side)


class ToyCritic(nn.Module):
    """f(x) = 2 x 2 block means: a (N, 1, 4, 4) map of an 8 x 8 image."""

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(x, 2)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.feature_map(x).flatten(1)


def blocks(a: np.ndarray) -> np.ndarray:
    return a.reshape(4, 2, 4, 2).mean(axis=(1, 3))


def test_score_equals_the_formula_on_a_fixed_toy_generator_encoder_and_critic() -> None:
    rng = np.random.default_rng(3)
    we, be, wg = rng.normal(size=(2, 64)) * 0.1, rng.normal(size=2), rng.normal(size=(64, 2))
    kappa = 0.5
    det = FAnoGAN(image_size=8, latent=2, kappa=kappa, channels="gray", photometric="none")
    det.metadata["channels_used"] = "gray"
    det.E = ToyEncoder(torch.tensor(we, dtype=torch.float32), torch.tensor(be, dtype=torch.float32))
    det.G = ToyGenerator(torch.tensor(wg, dtype=torch.float32), 8)
    det.D = ToyCritic()
    det.fitted = True
    test = images(3, seed=5, side=8)
    res = det.score(test)
    for i, img in enumerate(test):
        x = 2.0 * img[:, :, 0].astype(np.float64) - 1.0  # the paper's normalisation: mean 0.5, std 0.5
        z = np.tanh(we @ x.ravel() + be)
        recon = np.tanh(wg @ z).reshape(8, 8)
        residual = ((x - recon) ** 2).sum() / x.size                         # 1/n ||x - G(E(x))||^2
        feature = ((blocks(x) - blocks(recon)) ** 2).sum() / 16                # 1/n_d ||f(x) - f(G(E(x)))||^2
        assert res.components["residual"][i] == pytest.approx(residual, rel=1e-5)
        assert res.components["feature"][i] == pytest.approx(feature, rel=1e-5)
        assert res.scores[i] == pytest.approx(residual + kappa * feature, rel=1e-5)
        # The maps: the squared residual per pixel, and the score map whose mean is A(x).
        np.testing.assert_allclose(res.maps["residual"][i], (x - recon) ** 2, rtol=1e-4, atol=1e-6)
        assert float(res.maps["score"][i].mean()) == pytest.approx(res.scores[i], rel=1e-4)
    assert res.default_component == "score" and set(res.components) == {"score", "residual", "feature"}


# ---------------------------------------------------------------- WGAN-GP
def test_gradient_penalty_vanishes_for_a_critic_with_unit_gradient_and_not_otherwise() -> None:
    gen = torch.Generator().manual_seed(0)
    real, fake = torch.rand(6, 1, 4, 4, generator=gen), torch.rand(6, 1, 4, 4, generator=gen)
    w = torch.randn(16, generator=gen)
    unit = lambda x: x.flatten(1) @ (w / w.norm())  # noqa: E731  |grad| = 1 everywhere
    steep = lambda x: 3 * x.flatten(1) @ (w / w.norm())  # noqa: E731  |grad| = 3: penalty (3 - 1)^2 = 4
    assert float(gradient_penalty(unit, real, fake, gen)) == pytest.approx(0.0, abs=1e-6)
    assert float(gradient_penalty(steep, real, fake, gen)) == pytest.approx(4.0, rel=1e-5)


def test_a_few_wgan_gp_steps_lower_the_critics_loss() -> None:
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    critic = ConvCritic(1, 16, base=8, norm="layer")
    G = Generator(8, 1, 16, base=8)
    real = torch.rand(16, 1, 16, 16, generator=gen) * 0.2 + 0.6  # bright "parts"; G's untrained output is ~0
    with torch.no_grad():
        fake = G(sample_latent(16, 8, gen))
    opt = torch.optim.Adam(critic.parameters(), lr=2e-4, betas=(0.5, 0.9))

    def loss_now() -> float:
        return float(critic_loss(critic, real, fake, torch.Generator().manual_seed(9))[0].detach())

    before = loss_now()
    for _ in range(15):
        loss, _ = critic_loss(critic, real, fake, gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = loss_now()
    assert after < before - 0.5, (before, after)
    # The critic now tells them apart: it rates the real images higher.
    with torch.no_grad():
        assert float(critic(real).mean()) > float(critic(fake).mean())


def test_the_critic_and_encoder_have_no_batchnorm() -> None:
    det = FAnoGAN(image_size=16, latent=4, base_channels=4)
    det.metadata["channels_used"] = "rgb"
    G, E, D = det.build_nets()
    for net in (E, D):
        assert not any(isinstance(m, nn.BatchNorm2d) for m in net.modules())
        assert any(isinstance(m, nn.GroupNorm) for m in net.modules())  # LayerNorm over C, H, W
    assert G(torch.zeros(2, 4)).shape == (2, 3, 16, 16)


# ---------------------------------------------------------------- training: stages, budget, progress
def test_both_stages_report_their_losses_and_split_the_time_budget() -> None:
    seen: list[dict] = []
    det = create("fanogan", **{**FAnoGAN.quick_settings(), "epochs": 100000, "encoder_epochs": 100000,
                               "time_budget": 1.0, "gan_share": 0.6})
    report = det.fit(images(8, seed=0), progress=lambda d, t, info: seen.append(dict(info)))
    stages = det.metadata["training_stages"]
    assert stages["gan"]["time_budget"] == pytest.approx(0.6)
    assert stages["gan"]["stopped_by"] == "time_budget" and stages["encoder"]["stopped_by"] == "time_budget"
    # Stage 2 gets what stage 1 left: the total stays near the budget (one step of overshoot per stage).
    assert stages["encoder"]["time_budget"] == pytest.approx(1.0 - stages["gan"]["seconds"], abs=1e-6)
    assert report.stopped_by == "time_budget" and report.seconds < 2.5
    gan = [i for i in seen if i["stage"] == STAGE_GAN]
    enc = [i for i in seen if i["stage"] == STAGE_ENCODER]
    assert gan and enc and seen.index(enc[0]) > seen.index(gan[-1])
    assert all(np.isfinite(i["critic_loss"]) for i in gan)
    assert any(np.isfinite(i["generator_loss"]) for i in gan)  # generator every n_critic-th batch
    assert all(np.isfinite(i["residual_loss"]) and np.isfinite(i["feature_loss"]) for i in enc)


def test_generator_updates_every_n_critic_batches() -> None:
    det = create("fanogan", **{**FAnoGAN.quick_settings(), "epochs": 6, "n_critic": 3, "batch_size": 4})
    updates: list[float] = []
    det.fit(images(8, seed=0), progress=lambda d, t, info: updates.append(info.get("generator_loss"))
            if info["stage"] == STAGE_GAN else None)
    # 12 critic steps (6 epochs of 2 batches); the generator loss first appears at step 3 and changes every 3rd.
    assert len(updates) == 12
    assert all(np.isnan(u) for u in updates[:2]) and np.isfinite(updates[2])
    changes = [k for k in range(1, 12) if not (updates[k] == updates[k - 1] or
                                               (np.isnan(updates[k]) and np.isnan(updates[k - 1])))]
    assert changes == [2, 5, 8, 11]


def test_stage_budgets() -> None:
    assert stage_budgets(0, 0.7) == (0.0, 0.0)
    assert stage_budgets(100, 0.7) == pytest.approx((70, 30))
    assert stage_budgets(100, 0.7, used_by_first=50) == pytest.approx((70, 50))


# ---------------------------------------------------------------- model file, sample grid, registry
def test_save_and_load_round_trip_keeps_scores_and_the_sample_grid(tmp_path: Path) -> None:
    det = create("fanogan", **FAnoGAN.quick_settings())
    train = images(8, seed=0, channels=3)
    det.fit(train)
    test = images(3, seed=2, channels=3)
    before = det.score(test)
    det.save(tmp_path / "f.ai")
    again = load_detector(tmp_path / "f.ai")
    after = again.score(test)
    for k in before.components:
        np.testing.assert_array_equal(before.components[k], after.components[k])
    for k in before.maps:
        for a, b in zip(before.maps[k], after.maps[k], strict=True):
            np.testing.assert_array_equal(a, b)
    grid = again.metadata["sample_grid"]
    assert grid == det.metadata["sample_grid"] and grid["n"] == 16 and grid["sample_shape"] == [16, 16]
    pixels = decode_grid(grid["png_base64"])
    assert pixels.shape == (4 * 16 + 3 * 2, 4 * 16 + 3 * 2, 3) and pixels.dtype == np.uint8
    assert pixels[:16, :16].std() > 0  # a generated image, not a blank tile


def test_registered_and_configurable_by_name() -> None:
    assert detector_class("fanogan") is FAnoGAN and detector_class("f-anogan") is FAnoGAN
    assert parse_settings("fanogan", ["kappa=0.5", "gan_share=0.5", "time_budget=30"]) == {
        "kappa": 0.5, "gan_share": 0.5, "time_budget": 30.0}
    names = {p.name for p in FAnoGAN.PARAMS}
    assert {"image_size", "latent", "n_critic", "lr", "batch_size", "photometric", "time_budget"} <= names
    defaults = {p.name: p.default for p in FAnoGAN.PARAMS}
    assert (defaults["image_size"], defaults["latent"], defaults["lr"], defaults["batch_size"],
            defaults["n_critic"]) == (64, 100, 2e-4, 32, 5)


# ---------------------------------------------------------------- the window
def test_the_window_shows_the_sample_grid_and_both_stage_losses(qtbot, tmp_path, tiny_demo) -> None:
    import shutil

    from PySide6.QtCore import QSettings

    from inspector_gui.main_window import MainWindow

    data = shutil.copytree(tiny_demo, tmp_path / "parts")  # the window writes its project store beside the images
    win = MainWindow(QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))
    win.setProperty("quiet_errors", True)
    qtbot.addWidget(win)
    win.resize(1366, 768)
    win.show()
    win.open_path(data)
    qtbot.waitUntil(lambda: win.store is not None, timeout=30000)
    assert win.tabs.indexOf(win.samples) < 0  # no run, no samples

    # The training panel says which stage runs and shows both GAN losses.
    win.training.job_started()
    win.training.job_progress(3, 10, {"stage": STAGE_GAN, "loss": -1.5, "critic_loss": -1.5,
                                      "generator_loss": 0.25, "elapsed": 1.0, "epochs": 5})
    text = win.training.status.text()
    assert text.startswith("Training stage 1/2: WGAN-GP") and "critic loss -1.5" in text
    assert "generator loss 0.25" in text

    win.start_training("fanogan", FAnoGAN.quick_settings())
    qtbot.waitUntil(lambda: win.run is not None and win.run.model is not None and win.job is not None
                    and not win.job.running, timeout=120000)
    assert win.run.detector == "fanogan"
    qtbot.waitUntil(lambda: win.tabs.indexOf(win.samples) >= 0, timeout=10000)
    assert win.tabs.tabText(win.tabs.indexOf(win.samples)) == "Samples"
    assert "G(z)" in win.samples.caption.text()
    pixmap = win.samples.picture.pixmap()
    assert pixmap is not None and not pixmap.isNull() and pixmap.width() >= 70

    win.start_training("gmm", {"image_size": 32})  # a run without generated images: the tab goes
    qtbot.waitUntil(lambda: win.run.detector == "gmm" and not win.job.running, timeout=120000)
    qtbot.waitUntil(lambda: win.tabs.indexOf(win.samples) < 0, timeout=10000)
    win.close()
