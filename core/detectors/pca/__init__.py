"""Paper 001's baselines on PCA features of whole images (or patches): Gaussian KDE, one-class SVM and a GMM
chosen by BIC, each with the PCA size chosen on held-out good images (`baseline.py`)."""

from core.detectors.pca.gmm_bic import PcaGmmBic
from core.detectors.pca.kde import PcaKDE
from core.detectors.pca.ocsvm import PcaOneClassSVM

__all__ = ["PcaGmmBic", "PcaKDE", "PcaOneClassSVM"]
