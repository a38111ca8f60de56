"""Where the cluster is: `local:N` (a LocalCluster of N worker processes on this machine, one thread each) or
`tcp://HOST:PORT` (a running `dask scheduler`). Dask is imported here, lazily, with a plain message if missing."""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

INSTALL_HINT = "cluster scoring needs Dask: pip install -e .[cluster]  (or: pip install 'dask[distributed]')"


class ClusterUnavailable(RuntimeError):
    """Dask is missing, the address is malformed, or the scheduler cannot be reached (a user's error)."""


@dataclass(frozen=True)
class ClusterAddress:
    local_workers: int | None  # local:N -> N worker processes started here; None for a remote scheduler
    scheduler: str | None = None  # tcp://HOST:PORT

    def __str__(self) -> str:
        return f"local:{self.local_workers}" if self.local_workers else str(self.scheduler)


def parse_address(spec: str) -> ClusterAddress:
    """`local`, `local:N`, or a scheduler address `tcp://HOST:PORT` (also tls:// and a bare HOST:PORT)."""
    spec = spec.strip()
    m = re.fullmatch(r"local(?::(\d+))?", spec)
    if m:
        n = int(m.group(1)) if m.group(1) else (os.cpu_count() or 1)
        if n < 1:
            raise ClusterUnavailable(f"--cluster {spec}: a local cluster needs at least one worker")
        return ClusterAddress(n)
    m = re.fullmatch(r"((?:tcp|tls)://)?([\w.\-]+|\[[0-9a-fA-F:]+\]):(\d+)", spec)
    if m:
        return ClusterAddress(None, f"{m.group(1) or 'tcp://'}{m.group(2)}:{m.group(3)}")
    raise ClusterUnavailable(f"--cluster {spec}: expected local:N or tcp://HOST:PORT")


def import_distributed() -> Any:
    try:
        import distributed
    except ImportError:
        raise ClusterUnavailable(INSTALL_HINT) from None
    return distributed


@contextlib.contextmanager
def connect(spec: str | ClusterAddress, *, timeout: float = 30.0) -> Iterator[Any]:
    """A `distributed.Client` for the address; a local cluster is started here and closed on exit (its worker
    processes with it). Worker processes get OMP_NUM_THREADS=1 from Dask's nanny: one core per worker."""
    address = parse_address(spec) if isinstance(spec, str) else spec
    distributed = import_distributed()
    if address.local_workers:
        import dask

        # Dask's nanny sets MALLOC_TRIM_THRESHOLD_ in its workers, which turns off glibc's adaptive mmap
        # threshold: every decoded frame and feature map is then mmap'ed and faulted in afresh, and scoring
        # costs twice the CPU (measured: benchmarks/cluster_bench.py). A chunk's memory is bounded anyway.
        with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}), \
                distributed.LocalCluster(n_workers=address.local_workers, threads_per_worker=1, processes=True,
                                         dashboard_address=None, silence_logs=40) as cluster, \
                distributed.Client(cluster, timeout=timeout) as client:
            yield client
        return
    try:
        client = distributed.Client(address.scheduler, timeout=timeout)
    except OSError as exc:
        raise ClusterUnavailable(f"--cluster {address}: no scheduler answers there ({exc})") from None
    with client:
        yield client
