"""GAN-based detectors and helpers: f-AnoGAN (paper 002, fanogan.py) and the DCGAN that generates extra good
images for the autoencoders (paper 004, dcgan.py, `--set augment=dcgan`). Shared network blocks are in
core/nets/gan.py. Nothing is imported here, so the autoencoders can use dcgan.py without importing f-AnoGAN
(which uses their batch sampler)."""
