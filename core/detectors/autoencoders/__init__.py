"""Whole-image convolutional autoencoders of papers 002 (CAE), 003 (decentralization loss) and 004 (KD-CAE,
NI-CAE), on one shared base (`base.ImageAutoencoder`) and the shared blocks of `core.nets.conv_autoencoder`.
Each scores by reconstruction and maps the residual and the SSIM difference per pixel."""

from core.detectors.autoencoders.cae import ConvAE
from core.detectors.autoencoders.decentralization import DecentralizationAE
from core.detectors.autoencoders.kdcae import KDCAE
from core.detectors.autoencoders.nicae import NICAE

__all__ = ["KDCAE", "NICAE", "ConvAE", "DecentralizationAE"]
