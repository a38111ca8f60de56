"""Scoring on a Dask cluster with the desktop's core: chunks of image paths go to the workers, the model goes to
each worker once, each task scores its chunk with `core.evaluate.score_in_chunks`, and the client merges the
results in order into the project store or a CSV / Parquet file.

Dask (`pip install -e .[cluster]`) is imported only when a cluster is used, so the desktop app never needs it.
"""

from __future__ import annotations

from core.cluster.address import ClusterUnavailable, connect, parse_address
from core.cluster.run import ChunkFailure, ClusterOutcome, ClusterScorer

__all__ = ["ChunkFailure", "ClusterOutcome", "ClusterScorer", "ClusterUnavailable", "connect", "parse_address"]
