"""The two exceptions of the detector contract, in a module of their own so the model file format can raise
them without importing the Detector interface (which itself writes model files). Import them from
`core.detectors.base`."""


class Cancelled(Exception):
    """Raised inside fit/score when `should_stop()` turned true; the caller asked for it."""


class DetectorError(Exception):
    """A user-facing problem with a detector or a model file (message names the file)."""
