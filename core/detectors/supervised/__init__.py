"""Supervised detectors: they learn from the good AND defect labels engineers have stored (paper 004's CNN).
The engine picks their training and judged sets from the labels (core.project.labeled_split)."""

from core.detectors.supervised.cnn import SupervisedCNN

__all__ = ["SupervisedCNN"]
