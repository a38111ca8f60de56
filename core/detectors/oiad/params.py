"""Settings of the OIAD detector (paper 001) and the parsing of its code choice; the CLI's --set and the
window's settings form are built from OIAD_PARAMS."""

from __future__ import annotations

from core.detectors import settings
from core.detectors.base import DetectorError, Param
from core.detectors.oiad.morphs import METRICS

OIAD_PARAMS: tuple[Param, ...] = (
    Param("mode", "auto", "image: whole images resized to image_size (the paper); patch: sliding patches; auto: "
          "patch when image_size is at least twice the patch side (real parts: a 32 px VAE on a 64 px image "
          "keeps detail a whole-image VAE at that size loses, so traversals change the decoded patch), else "
          "image (small images such as 16 px digits)", choices=("auto", "image", "patch")),
    Param("image_size", 64, "resize images to this square side (a multiple of 16)", minimum=16),
    Param("patch", 32, "patch side in patch mode (a multiple of 16)", minimum=16),
    Param("patch_stride", 16, "patch step at scoring time in patch mode", minimum=1),
    Param("patches_per_image", 16, "patch mode: random crops per training image per epoch", minimum=1),
    Param("latent", None, "latent codes d (none = 20 gray, 40 colour, as in the paper)", minimum=2, kind=int),
    Param("width", 32, "channels of the first conv layers (paper: 32; then 32, 64, 64)", minimum=1),
    Param("disc_hidden", 256, "TC discriminator layer width (paper: 1000; 256 estimates TC as well on 20-40 "
          "codes and trains several times faster on a CPU)", minimum=4),
    Param("disc_layers", 3, "TC discriminator hidden layers (paper: 6)", minimum=1),
    Param("rec_weight", None, "weight of the summed squared error L_R: a Gaussian likelihood of variance "
          "1 / (2 rec_weight), i.e. pixel noise sigma = 0.1 at 50. none = auto: sigma = an eighth of the "
          "training patches' within-patch pixel standard deviation (about 90-360 on the bottle, 1,000-3,600 on "
          "magnetic tiles and solar cells, where a fixed 50 treats the texture as noise and the codes collapse "
          "to the prior)", minimum=0.0, kind=float),
    Param("warmup", 0.2, "share of the training steps over which the KL and TC weights ramp up from 0 (codes "
          "get used before the prior pulls them in)", minimum=0.0, maximum=1.0),
    Param("gamma", 40.0, "weight of the total-correlation term (paper: 40)", minimum=0.0),
    Param("eta", 0.1, "weight of the (1/beta_j - 1)^2 regulariser (paper: 0.1)", minimum=0.0),
    Param("epochs", 100, "passes over the training images", minimum=1),
    settings.batch_size(64, "training batch", minimum=2),
    Param("lr", 1e-3, "Adam learning rate of the VAE", minimum=0.0),
    Param("lr_disc", 1e-4, "Adam learning rate of the TC discriminator (FactorVAE: 1e-4)", minimum=0.0),
    settings.TIME_BUDGET,
    Param("val_share", 0.2, "share of the good images held out for code ranges and SC intervals",
          minimum=0.0, maximum=0.9),
    Param("n_morphs", 100, "morphs per image and code, m (paper: 100; lower it for interactive use)", minimum=1),
    Param("delta_r", 0.1, "search radius step per round, in widths of the code's normal range", minimum=1e-4),
    Param("candidates", 0, "candidate values per round, B (0 = n_morphs / 4)", minimum=0),
    Param("alpha", 0.4, "SC interval = alpha- and (1 - alpha)-fractiles of validation normals (paper: 0.4)",
          minimum=0.0, maximum=0.5),
    Param("codes", "top-5", "codes to perturb: top-K by rank_by, or a list such as 3,7,12", kind=str),
    Param("rank_by", "effect", "code ranking: effect (mean change of the decoded validation images when the "
          "code is traversed over its range: codes the decoder ignores come last), relevance (beta x code "
          "variance), tightness of the SC interval on validation normals, or both (relevance + tightness ranks)",
          choices=("effect", "both", "relevance", "tightness")),
    Param("code_range", "widened", "normal range of a code for the morph search: widened = validation mean "
          "+- max(3 sd of the validation codes, 2 prior sd), normal = validation min to max (the paper; on real "
          "surfaces so narrow that morphs barely differ)", choices=("widened", "normal")),
    Param("score_sides", "one", "continuous score: one = excursion on the metric's anomalous side only "
          "(high MSE/loss, low SSIM); two = either side, like the interval verdict", choices=("one", "two")),
    Param("strip_length", 8, "morphs per code kept for the window's morph strip", minimum=2),
    Param("strip_metric", "ssim", "SC metric shown in the morph strips", choices=METRICS),
    Param("decode_batch", 512, "morphs decoded per batch", minimum=1),
    settings.CHANNELS,
    settings.seed("initialisation, batches, morph search"),
    settings.DEVICE,
)

MAX_VAL_PATCHES = 256  # patch mode: validation patches used for ranges and intervals (x K x m decodes)


def parse_codes(text: str, latent: int) -> tuple[int | None, list[int] | None]:
    """"top-5" -> (5, None); "3,7,12" -> (None, [3, 7, 12]); "all" -> (latent, None)."""
    t = text.strip().lower()
    if t == "all":
        return latent, None
    if t.startswith("top-"):
        try:
            k = int(t[4:])
        except ValueError:
            k = 0
        if k < 1:
            raise DetectorError(f"oiad: codes={text!r}: top-K needs a positive K")
        return min(k, latent), None
    try:
        codes = [int(c) for c in t.replace(" ", "").split(",") if c]
    except ValueError:
        raise DetectorError(f"oiad: codes={text!r} is neither top-K, all, nor a list like 3,7,12") from None
    bad = [c for c in codes if not 0 <= c < latent]
    if not codes or bad:
        raise DetectorError(f"oiad: codes={text!r}: codes must lie in 0..{latent - 1}")
    return None, list(dict.fromkeys(codes))
