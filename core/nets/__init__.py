"""Torch building blocks shared by detectors."""
