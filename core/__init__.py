"""Anomaly Inspector engine: data, detectors, scoring, metrics, store, export, CLI. No Qt here."""

__version__ = "0.1.0"
