"""Paper 000's patch detectors: the patch VAE (score split L, D, A, M) and its AE baseline, trained on random
crops by a torch network; the GMM and Isolation Forest on PCA patch features. All score by sliding a window
(the shared machinery is `core.detectors.patch_base` / `pca_patch` / `sliding_windows`)."""

from core.detectors.patch.gmm import PatchGMM
from core.detectors.patch.iforest import PatchIsolationForest
from core.detectors.patch.vae import PatchAE, PatchVAE

__all__ = ["PatchAE", "PatchGMM", "PatchIsolationForest", "PatchVAE"]
