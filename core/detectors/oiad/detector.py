"""OIAD (paper 001): a disentangled Detector-VAE, PR-morphs and structure consistency.

fit: train the Detector-VAE with its TC discriminator (oiad/training.py) on all but `val_share` of the good
images; on the held-out normals measure each code's normal value range, rank the codes and select some,
and record the SC of the validation normals (their alpha / (1 - alpha) fractiles are the intervals).

Why the defaults are what they are (issue 18: on real surfaces the paper's setting gave strips of identical
grey squares, every code the same SC): mode auto runs 32 px patches of the 64 px image (a whole-image VAE at
64 px keeps too little detail for a code to change anything visible); rec_weight auto sets the likelihood's
pixel noise from the training patches' contrast (a fixed sigma = 0.1 is larger than the texture of a metal or
silicon surface, so the best VAE ignores the image and every code collapses to the prior); KL and TC weights
warm up; code ranges are widened beyond the validation min..max (which spans a sliver of what the decoder
responds to); codes are ranked by their traversal effect on decoded validation patches (relevance and SC
tightness both favour collapsed codes: their morphs equal the reconstruction, so their SC is tight). Each
selected code's SC comes from that code's morphs only and has its own fractile interval.
score: for each image and selected code, search m natural morphs, decode them in batches, and compare
(oiad/morphs.py). Components (higher = more anomalous for every one):
    SC_mse, SC_loss, SC_ssim   largest normalised excursion over the selected codes, per metric
    OIAD (default)             mean of the three
    SC_<code>                  per selected code, mean excursion over the three metrics
    recon                      plain reconstruction error of the same network (what morphs add shows here)
    outside                    how many (metric, code) SC values are outside their interval: the paper's
                               verdict is "anomalous iff outside >= 1" for the metrics it uses
Extras: "morph_strips" (the window's morph strip panel) and "verdict" (per metric 0/1).
Maps: image mode gives pixel maps on the resized image (OIAD: mean squared difference between the image
and its morphs; recon: squared reconstruction error); patch mode gives every component on the patch grid.

Cost: scoring decodes n_images x n_codes x n_morphs images (defaults: 5 codes x 100 morphs = 500 decodes
per image, or per patch in patch mode); fit adds n_val x 2 x n_codes x n_morphs for the calibration.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from core.data.images import resize_image
from core.data.patches import random_crops, sliding_patches, to_tensor
from core.detectors.base import (
    Cancelled,
    Detector,
    DetectorError,
    FitReport,
    ProgressFn,
    StopFn,
    never_stop,
    no_progress,
)
from core.detectors.channels import ColourChannels
from core.detectors.oiad.morphs import (
    HIGHER_IS_ANOMALOUS,
    METRICS,
    auto_candidates,
    excursion,
    fractile_intervals,
    morph_latents,
    rank_codes,
    search_morph_values,
    strip_values,
    structure_consistency,
)
from core.detectors.oiad.params import MAX_VAL_PATCHES, OIAD_PARAMS, parse_codes
from core.detectors.oiad.training import train_detector_vae
from core.detectors.results import MapGeometry, ScoreResult
from core.detectors.torch_runtime import TorchDevice, load_net_state, net_state, seed_everything
from core.nets.oiad_nets import DetectorVAE, TCDiscriminator


class OIAD(TorchDevice, ColourChannels, Detector):
    name = "oiad"
    PARAMS = OIAD_PARAMS
    components = ("OIAD", "SC_mse", "SC_loss", "SC_ssim", "recon", "outside")
    default_component = "OIAD"
    # The window shows this under the detector choice (training panel).
    summary = ("OIAD (paper 001) targets semantic / global anomalies: an image or patch that is not of the "
               "normal kind (a different digit, a missing or foreign part), not small surface flaws. Each "
               "selected code of a disentangled VAE is traversed; its morphs' structure consistency (SC) is "
               "compared with the code's normal interval, and the morph strips show what each code changes "
               "(click a patch on the heat map). On the dev surface-defect data it is weak: image AUROC 0.79 on "
               "bottle, 0.64 on magnetic tiles, 0.67 on solar cells (defaults, 150 s of training; "
               "docs/benchmarks.md); for scratches, cracks and contamination use padim or patchcore.")

    @classmethod
    def quick_settings(cls) -> dict[str, Any]:
        # 16 px images, 6 codes, 4 morphs per code, one epoch: seconds, every stage still runs.
        return {"image_size": 16, "width": 8, "latent": 6, "disc_hidden": 32, "disc_layers": 2, "epochs": 1,
                "batch_size": 8, "n_morphs": 4, "codes": "top-2", "strip_length": 2, "decode_batch": 64}

    # -- preprocessing ---------------------------------------------------------------------------
    @property
    def latent(self) -> int:
        return self.params["latent"] or (40 if self.n_channels == 3 else 20)

    @property
    def mode(self) -> str:
        """The mode in use: `auto` is patch mode when the image holds at least 2 x 2 patches, else image mode."""
        mode = self.params["mode"]
        if mode == "auto":
            return "patch" if self.params["image_size"] >= 2 * self.params["patch"] else "image"
        return mode

    @property
    def side(self) -> int:
        return self.params["image_size"] if self.mode == "image" else self.params["patch"]

    @property
    def rec_weight(self) -> float:
        """The reconstruction weight in use: the setting, or the one fit chose (auto)."""
        if self.params["rec_weight"] is not None:
            return float(self.params["rec_weight"])
        return float(self.metadata.get("rec_weight", 50.0))

    def prepare(self, images: Sequence[np.ndarray]) -> tuple[list[torch.Tensor], list[MapGeometry]]:
        self.channels_for(images)
        size = self.params["image_size"]
        image_mode = self.mode == "image"
        if not image_mode and self.params["patch"] > size:
            raise DetectorError(f"oiad: patch {self.params['patch']} is larger than image_size {size}")
        tensors, geometry = [], []
        for img in images:
            out = resize_image(self.convert(img), size)
            tensors.append(to_tensor(out.astype(np.float32, copy=False)))
            original = (int(img.shape[0]), int(img.shape[1]))
            if image_mode:
                geometry.append(MapGeometry((size, size), original, 1, 1))
            else:
                geometry.append(MapGeometry((size, size), original, self.params["patch"],
                                            self.params["patch_stride"]))
        return tensors, geometry

    def build(self) -> None:
        try:
            net = DetectorVAE(self.n_channels, self.side, self.latent, self.params["width"])
        except ValueError as exc:  # a side the four stride-2 layers cannot halve cleanly
            raise DetectorError(f"oiad: {exc}") from None
        self.net = net.to(self.device)

    # -- fit ----------------------------------------------------------------------------------------
    def _fit(self, images: Sequence[np.ndarray], *, progress: ProgressFn, should_stop: StopFn) -> FitReport:
        p = self.params
        gen = seed_everything(int(p["seed"]))
        tensors, _ = self.prepare(images)
        parse_codes(p["codes"], self.latent)  # a bad code list fails before training, not after
        order = torch.randperm(len(tensors), generator=gen).tolist()
        n_val = int(round(p["val_share"] * len(tensors)))
        if len(tensors) < 4 or n_val < 1:
            # Too few images to hold some out: ranges and intervals come from the training images themselves
            # (optimistic: intervals are tighter than on unseen normals). Recorded in the metadata.
            train_idx, val_idx = order, order
        else:
            train_idx, val_idx = order[n_val:], order[:n_val]
        self.metadata["n_fit"], self.metadata["n_val"] = len(train_idx), len(val_idx)
        self.metadata["val_is_train"] = train_idx is val_idx
        self.metadata["mode"] = self.mode
        if p["rec_weight"] is None:
            self.metadata["rec_weight"] = auto_rec_weight(self._units([tensors[i] for i in train_idx]))
        self.build()
        disc = TCDiscriminator(self.latent, p["disc_hidden"], p["disc_layers"]).to(self.device)
        batch = p["batch_size"]
        if self.mode == "image":
            train = torch.stack([tensors[i] for i in train_idx])
            steps = max(1, math.ceil(len(train) / batch))

            def draw() -> torch.Tensor:
                return train[torch.randint(len(train), (batch,), generator=gen)].to(self.device)
        else:
            train_list = [tensors[i] for i in train_idx]
            steps = max(1, math.ceil(len(train_list) * p["patches_per_image"] / batch))

            def draw() -> torch.Tensor:
                return random_crops(train_list, batch, p["patch"], gen).to(self.device)

        report, terms = train_detector_vae(self.net, disc, draw, {**p, "rec_weight": self.rec_weight}, steps, gen,
                                           progress=progress,
                                           should_stop=should_stop)
        self.metadata["train_terms"] = terms
        self.calibrate(self._units([tensors[i] for i in val_idx]), progress=progress, should_stop=should_stop)
        return report

    def _units(self, tensors: list[torch.Tensor]) -> torch.Tensor:
        """What the VAE sees: whole images, or (patch mode) their sliding patches, at most MAX_VAL_PATCHES."""
        if self.mode == "image":
            return torch.stack(tensors)
        patches = torch.cat([sliding_patches(t, self.params["patch"], self.params["patch_stride"])[0]
                             for t in tensors])
        if len(patches) > MAX_VAL_PATCHES:
            pick = torch.randperm(len(patches), generator=torch.Generator().manual_seed(self.params["seed"]))
            patches = patches[pick[:MAX_VAL_PATCHES]]
        return patches

    @torch.inference_mode()
    def encode_all(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mus, lvs = [], []
        for a in range(0, len(x), 256):
            mu, lv = self.net.encode(x[a:a + 256].to(self.device))
            mus.append(mu.float().cpu())
            lvs.append(lv.float().cpu())
        return torch.cat(mus), torch.cat(lvs)

    def for_inference(self) -> None:
        # channels_last roughly doubles the CPU speed of the transposed convolutions (measured at 64 px);
        # the weights themselves are unchanged.
        self.net.eval()
        self.net.to(memory_format=torch.channels_last)

    def calibrate(self, val: torch.Tensor, *, progress: ProgressFn = no_progress,
                  should_stop: StopFn = never_stop) -> None:
        """Normal code ranges, code choice and the validation SC the intervals come from."""
        p = self.params
        self.for_inference()
        mu, _ = self.encode_all(val)
        beta = self.net.log_beta.detach().float().cpu().exp()
        if p["code_range"] == "widened":
            # The validation min..max of a code is often a sliver of what the decoder responds to (on real
            # surfaces morphs inside it differ by under a grey level): widen it to 3 sd of the validation codes
            # and at least 2 sd of the code's learned prior N(0, 1/beta).
            centre, sd = mu.mean(dim=0), mu.std(dim=0, unbiased=False)
            half = torch.maximum(3.0 * sd, 2.0 / beta.sqrt())
            self.code_lo, self.code_hi = centre - half, centre + half
        else:
            self.code_lo, self.code_hi = mu.min(dim=0).values, mu.max(dim=0).values
        # Relevance: the data's spread of a code in units of its learned prior variance (1/beta). A collapsed
        # code (posterior = prior for every image) has ~0; a code the images use has a large share.
        self.relevance = (beta * mu.var(dim=0, unbiased=False)).numpy()
        self.effect = self.traversal_effect(mu, should_stop)
        self.metadata["effect"] = [round(float(v), 6) for v in self.effect]
        top_k, explicit = parse_codes(p["codes"], self.latent)
        if explicit is not None:
            candidates = np.array(explicit)
        elif p["rank_by"] == "effect":
            candidates = np.argsort(-self.effect, kind="stable")[:top_k]
        else:
            by_rel = rank_codes(self.relevance, None, "relevance")
            n_cand = top_k if p["rank_by"] == "relevance" else min(self.latent, 2 * top_k)
            candidates = by_rel[:n_cand]
        sc = self.val_sc(val, candidates, progress, should_stop)  # (n_val, 3, K)
        if explicit is None and p["rank_by"] in ("both", "tightness"):
            tightness = self.tightness(sc)
            order = rank_codes(self.relevance[candidates], tightness, p["rank_by"])
            keep = order[:top_k]
            candidates, sc = candidates[keep], sc[:, :, keep]
        self.codes = np.asarray(candidates, dtype=np.int64)
        self.val_sc_values = sc.astype(np.float64)
        self.metadata["codes"] = self.codes.tolist()

    @torch.inference_mode()
    def traversal_effect(self, mu: torch.Tensor, should_stop: StopFn = never_stop, n_units: int = 64,
                         steps: int = 8) -> np.ndarray:
        """Per code: the mean per-pixel standard deviation of the decoded images when that code alone walks
        its range in `steps` even steps (other codes at the unit's own values), over up to `n_units` validation
        units. A code the decoder ignores scores ~0 however much the encoder spreads it."""
        sub = mu[:n_units]
        n = len(sub)
        out = np.zeros(self.latent)
        device = next(self.net.parameters()).device
        for j in range(self.latent):
            if should_stop():
                raise Cancelled()
            vals = torch.linspace(0.0, 1.0, steps)[None, None, :] * (self.code_hi[j] - self.code_lo[j]) \
                + self.code_lo[j]
            z = morph_latents(sub, torch.tensor([j]), vals.expand(n, 1, steps).contiguous())
            dec = self.net.decode(z.to(device)).float().cpu().reshape(n, steps, -1)
            out[j] = float(dec.std(dim=1, unbiased=False).mean())
        return out

    @staticmethod
    def tightness(sc: np.ndarray) -> np.ndarray:
        """Relative spread of each code's SC over validation normals (interquartile range / median), averaged
        over the metrics (SSIM as 1 - SSIM so every metric is a discrepancy). Lower = tighter."""
        out = []
        for i, metric in enumerate(METRICS):
            v = sc[:, i, :] if HIGHER_IS_ANOMALOUS[metric] else 1.0 - sc[:, i, :]
            q25, q50, q75 = np.quantile(v, [0.25, 0.5, 0.75], axis=0)
            out.append((q75 - q25) / np.maximum(np.abs(q50), 1e-12))
        return np.mean(out, axis=0)

    def val_sc(self, val: torch.Tensor, codes: np.ndarray, progress: ProgressFn, should_stop: StopFn) -> np.ndarray:
        """SC of the validation normals, (n_val, 3, K). Reported as its own stage: it takes a while (n_val x K x m
        decodes) after the loss curve has ended."""
        parts = []
        chunk = self.chunk_size(len(codes))
        start = time.perf_counter()
        for a in range(0, len(val), chunk):
            out = self.sc_batch(val[a:a + chunk], codes, should_stop, strips=False)
            parts.append(np.stack([out["sc"][m] for m in METRICS], axis=1))
            progress(min(len(val), a + chunk), len(val),
                     {"stage": "calibrating", "elapsed": time.perf_counter() - start})
        return np.concatenate(parts)

    # -- scoring ----------------------------------------------------------------------------------------
    def chunk_size(self, n_codes: int) -> int:
        """Images per scoring chunk: about four decode batches of morphs, so progress and cancel stay live."""
        return max(1, (4 * self.params["decode_batch"]) // max(1, n_codes * self.params["n_morphs"]))

    def sc_batch(self, x: torch.Tensor, codes: np.ndarray, should_stop: StopFn, *, strips: bool) -> dict[str, Any]:
        """SC per metric (N, K) for a batch of images/patches, plus maps and (optionally) strip morphs."""
        p = self.params
        if not hasattr(self, "_search_gen"):
            self._search_gen = torch.Generator().manual_seed(int(p["seed"]) + 1)

        def check() -> None:
            if should_stop():
                raise Cancelled()

        x = x.to(self.device)
        with torch.inference_mode():
            mu, log_var = self.net.encode(x)
            mu, log_var = mu.float().cpu(), log_var.float().cpu()
            codes_t = torch.as_tensor(codes, dtype=torch.long)
            values = search_morph_values(
                mu[:, codes_t], self.code_lo[codes_t], self.code_hi[codes_t], n_morphs=p["n_morphs"],
                delta_r=p["delta_r"], candidates=p["candidates"] or auto_candidates(p["n_morphs"]),
                gen=self._search_gen)
            x = x.float().cpu()
            res = structure_consistency(self.net, x, mu, log_var, codes_t, values, rec_weight=self.rec_weight,
                                        decode_batch=p["decode_batch"], check=check)
            recon = self.net.decode(mu.to(self.device)).float().cpu()
            out: dict[str, Any] = {
                "sc": {m: res.sc[m].numpy().astype(np.float64) for m in METRICS},
                "morph_map": res.pixel_map.numpy(),
                "recon_map": (recon - x).pow(2).mean(dim=1).numpy(),
            }
            out["recon"] = out["recon_map"].reshape(len(x), -1).mean(axis=1).astype(np.float64)
            if strips:
                # The strip is drawn from the very morph values SC was computed from: evenly through their
                # sorted order, so it reads as a traversal of the code.
                sv = strip_values(values, p["strip_length"])  # (N, K, s)
                n, k, s = sv.shape
                z = morph_latents(mu, codes_t, sv)
                dec = torch.cat([self.net.decode(z[a:a + p["decode_batch"]].to(self.device)).float().cpu()
                                 for a in range(0, len(z), p["decode_batch"])])
                out["strip_morphs"] = dec.view(n, k, s, *dec.shape[1:]).permute(0, 1, 2, 4, 5, 3).numpy()
                out["strip_values"] = sv.numpy()
                out["source"] = x.permute(0, 2, 3, 1).numpy()
                out["recon_img"] = recon.permute(0, 2, 3, 1).numpy()
        return out

    def intervals(self) -> dict[str, np.ndarray]:
        """metric -> (K, 2) intervals from the stored validation SC at the current alpha."""
        return {m: fractile_intervals(self.val_sc_values[:, i, :], self.params["alpha"])
                for i, m in enumerate(METRICS)}

    def judge(self, sc: dict[str, np.ndarray]) -> dict[str, Any]:
        """Excursions, components and verdicts from SC values (N, K) per metric."""
        ivs = self.intervals()
        sides = self.params["score_sides"]
        exc = {m: excursion(sc[m], ivs[m], m, sides) for m in METRICS}
        comps = {f"SC_{m}": exc[m].max(axis=1) for m in METRICS}
        comps["OIAD"] = np.mean([comps[f"SC_{m}"] for m in METRICS], axis=0)
        per_code = np.mean([exc[m] for m in METRICS], axis=0)  # (N, K)
        for j, code in enumerate(self.codes):
            comps[f"SC_{int(code)}"] = per_code[:, j]
        outside = {m: (sc[m] < ivs[m][:, 0]) | (sc[m] > ivs[m][:, 1]) for m in METRICS}
        comps["outside"] = np.sum([o.sum(axis=1) for o in outside.values()], axis=0).astype(np.float64)
        verdict = [{f"SC_{m}": int(outside[m][i].any()) for m in METRICS} for i in range(len(comps["OIAD"]))]
        return {"components": comps, "verdict": verdict, "intervals": ivs}

    def _score(self, images: Sequence[np.ndarray], *, progress: ProgressFn, should_stop: StopFn) -> ScoreResult:
        self._search_gen = torch.Generator().manual_seed(int(self.params["seed"]) + 1)  # same images, same SC
        self.for_inference()
        tensors, geometry = self.prepare(images)
        if self.mode == "patch":
            return self._score_patches(tensors, geometry, progress, should_stop)
        chunk = self.chunk_size(len(self.codes))
        rows: list[dict[str, Any]] = []
        for a in range(0, len(tensors), chunk):
            if should_stop():
                raise Cancelled()
            rows.append(self.sc_batch(torch.stack(tensors[a:a + chunk]), self.codes, should_stop, strips=True))
            progress(min(len(tensors), a + chunk), len(tensors), {})
        sc = {m: np.concatenate([r["sc"][m] for r in rows]) for m in METRICS}
        judged = self.judge(sc)
        comps = judged["components"]
        comps["recon"] = np.concatenate([r["recon"] for r in rows])
        maps = {"OIAD": [m for r in rows for m in r["morph_map"]], "recon": [m for r in rows for m in r["recon_map"]]}
        strips = [self.strips_for(unit_rows(rows, i), {m: sc[m][i] for m in METRICS}, judged["intervals"],
                                  image_box(geometry[i], None))
                  for i in range(len(tensors))]
        return self.result(comps, maps, geometry, strips, judged["verdict"])

    def _score_patches(self, tensors: list[torch.Tensor], geometry: list[MapGeometry], progress: ProgressFn,
                       should_stop: StopFn) -> ScoreResult:
        """Every patch is scored like an image; an image takes the worst patch (max), its strips are those of
        that patch, and every component is also a map on the patch grid."""
        p = self.params
        comps_rows: list[dict[str, float]] = []
        maps: dict[str, list[np.ndarray]] = {}
        strips, verdicts = [], []
        for i, t in enumerate(tensors):
            patches, (gh, gw) = sliding_patches(t, p["patch"], p["patch_stride"])
            chunk = self.chunk_size(len(self.codes))
            rows = [self.sc_batch(patches[a:a + chunk], self.codes, should_stop, strips=True)
                    for a in range(0, len(patches), chunk)]
            sc = {m: np.concatenate([r["sc"][m] for r in rows]) for m in METRICS}
            judged = self.judge(sc)
            comps = judged["components"]
            comps["recon"] = np.concatenate([r["recon"] for r in rows])
            for name, vals in comps.items():
                maps.setdefault(name, []).append(vals.reshape(gh, gw).astype(np.float32))
            worst = int(np.argmax(comps[self.default_component]))
            comps_rows.append({name: float(vals.max()) for name, vals in comps.items()})
            strips.append(self.strips_for(unit_rows(rows, worst), {m: sc[m][worst] for m in METRICS},
                                          judged["intervals"], image_box(geometry[i], divmod(worst, gw))))
            verdicts.append({k: max(v[k] for v in judged["verdict"]) for k in judged["verdict"][0]})
            progress(i + 1, len(tensors), {})
        comps_all = {name: np.array([r[name] for r in comps_rows]) for name in comps_rows[0]}
        return self.result(comps_all, maps, geometry, strips, verdicts)

    def result(self, comps: dict[str, np.ndarray], maps: dict[str, list[np.ndarray]], geometry: list[MapGeometry],
               strips: list[list[dict]], verdict: list[dict]) -> ScoreResult:
        ordered = {name: np.asarray(comps[name], dtype=np.float64) for name in self.components}
        ordered.update({name: np.asarray(v, dtype=np.float64) for name, v in comps.items() if name not in ordered})
        return ScoreResult(self.default_component, ordered, maps, geometry,
                           {"morph_strips": strips, "verdict": verdict})

    def strips_for(self, unit: dict[str, np.ndarray], sc: dict[str, np.ndarray], ivs: dict[str, np.ndarray],
                   box: dict[str, Any]) -> list[dict]:
        """The payload inspector_gui/morph_strip.py reads: one dict per selected code. `unit` holds one image's
        or patch's strip_morphs (K, s, H, W, C), strip_values (K, s), source and recon_img (H, W, C)."""
        metric = self.params["strip_metric"]

        def gray(a: np.ndarray) -> np.ndarray:
            a = np.clip(a, 0.0, 1.0).astype(np.float32)
            return a[..., 0] if a.shape[-1] == 1 else a

        source, recon = gray(unit["source"]), gray(unit["recon_img"])
        out = []
        for j, code in enumerate(self.codes):
            lo, hi = ivs[metric][j]
            out.append({"code": int(code), "morphs": gray(unit["strip_morphs"][j]), "sc": float(sc[metric][j]),
                        "interval": (float(lo), float(hi)), "metric": f"SC_{metric}",
                        "values": [float(v) for v in unit["strip_values"][j]],
                        "range": (float(self.code_lo[code]), float(self.code_hi[code])),
                        "source": source, "recon": recon, **box})
        return out

    def strips_at(self, image: np.ndarray, cell: tuple[int, int] | None = None) -> list[dict]:
        """The morph strips of one patch of `image` (patch mode: grid cell (row, col) of the score maps; None =
        the worst patch, as scoring shows) or of the whole image (image mode): what the window shows when a
        person clicks a patch on the heat map."""
        if not self.fitted:
            raise DetectorError(f"{self.name}: strips_at() before fit() or load()")
        if self.mode == "image" or cell is None:
            return self.score([image]).extras["morph_strips"][0]
        self.for_inference()
        self._search_gen = torch.Generator().manual_seed(int(self.params["seed"]) + 1)
        tensors, geometry = self.prepare(self._normalised([image]))
        patches, (gh, gw) = sliding_patches(tensors[0], self.params["patch"], self.params["patch_stride"])
        i, j = int(cell[0]), int(cell[1])
        if not (0 <= i < gh and 0 <= j < gw):
            raise DetectorError(f"oiad: patch ({i}, {j}) is outside the {gh} x {gw} patch grid")
        row = self.sc_batch(patches[i * gw + j:i * gw + j + 1], self.codes, never_stop, strips=True)
        judged = self.judge(row["sc"])
        return self.strips_for(unit_rows([row], 0), {m: row["sc"][m][0] for m in METRICS}, judged["intervals"],
                               image_box(geometry[0], (i, j)))

    # -- persistence ------------------------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        state: dict[str, Any] = net_state(self.net)
        state.update({"code_lo": self.code_lo, "code_hi": self.code_hi,
                      "relevance": torch.from_numpy(np.asarray(self.relevance, np.float32)),
                      "codes": torch.from_numpy(self.codes), "val_sc": torch.from_numpy(self.val_sc_values)})
        return state

    def _load_state(self, state: dict[str, Any]) -> None:
        self.build()
        load_net_state(self.net, state)
        self.net.to(self.device).eval()
        self.code_lo, self.code_hi = state["code_lo"].float(), state["code_hi"].float()
        self.relevance = state["relevance"].numpy()
        self.codes = state["codes"].numpy().astype(np.int64)
        self.val_sc_values = state["val_sc"].numpy().astype(np.float64)
        self.effect = np.asarray(self.metadata.get("effect", np.zeros(self.latent)), dtype=np.float64)


STRIP_PARTS = ("strip_morphs", "strip_values", "source", "recon_img")


def unit_rows(rows: list[dict[str, Any]], index: int) -> dict[str, np.ndarray]:
    """The strip parts of unit `index` (an image, or a patch) across sc_batch chunks."""
    for r in rows:
        n = len(r["strip_values"])
        if index < n:
            return {k: r[k][index] for k in STRIP_PARTS}
        index -= n
    raise IndexError(index)


def image_box(g: MapGeometry, cell: tuple[int, int] | None) -> dict[str, Any]:
    """Where a strip's unit lies: {"cell": (row, col) or None, "box": (x0, y0, x1, y1) in original-image pixels}."""
    (in_h, in_w), (h, w) = g.input_shape, g.original_shape
    if cell is None:
        return {"cell": None, "box": (0.0, 0.0, float(w), float(h))}
    y0, x0 = cell[0] * g.stride, cell[1] * g.stride
    sy, sx = h / in_h, w / in_w
    return {"cell": (int(cell[0]), int(cell[1])),
            "box": (x0 * sx, y0 * sy, (x0 + g.patch) * sx, (y0 + g.patch) * sy)}


def auto_rec_weight(units: torch.Tensor) -> float:
    """rec_weight for pixel noise sigma = an eighth of the units' within-unit pixel standard deviation (the
    texture the codes should carry); sigma kept in [0.004, 0.125] (rec_weight 32 to 31,250). At a quarter the
    elpv cells' top code moved its strip by 3.9 grey levels, at an eighth by 7.4 (docs/benchmarks.md)."""
    x = units.float().flatten(1)
    s = float(x.var(dim=1, unbiased=False).mean().sqrt())
    sigma = min(max(s / 8.0, 0.004), 0.125)
    return round(1.0 / (2.0 * sigma * sigma), 3)
