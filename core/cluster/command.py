"""`anomaly-inspector score DATA --model M --cluster SPEC`: the score verb's work handed to a Dask cluster. The
verb (core/cli) passes its own project-store routine in, so the images chosen and the messages are the same."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from core.cluster.address import ClusterUnavailable, connect, parse_address
from core.cluster.run import ClusterScorer, absolute_items
from core.progress_text import TextProgress
from core.project import image_sets, project_items

IntoProject = Callable[[argparse.Namespace, Any, Any], int]  # (args, detector, scorer) -> exit status


def _log(msg: str) -> None:
    print(msg, file=sys.stderr)


def score_on_cluster(args: argparse.Namespace, detector: Any, into_project: IntoProject) -> int:
    """Exit status 0; 1 when chunks failed (named, the rest scored); 2 for a cluster that cannot be used."""
    try:
        address = parse_address(args.cluster)
        with connect(address) as client, ClusterScorer(client, args.model, log=_log) as scorer:
            _log(f"cluster {address}: {scorer.workers()} worker threads at {client.scheduler.address}")
            if not args.out:
                status = into_project(args, detector, scorer.score_into_store)
            else:
                judged = args.split in ("judged", "test")
                items = absolute_items(image_sets(args.data).judged if judged else project_items(args.data))
                with TextProgress("scoring") as bar:
                    outcome = scorer.score_to_file(items, args.out, progress=bar)
                print(f"scored {outcome.n_images} images ({len(outcome.skipped)} skipped) on {address} in "
                      f"{outcome.seconds:.1f} s; wrote {args.out}")
                status = 0
            return _report_failures(scorer, args) or status
    except ClusterUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: the cluster's remaining tasks were cancelled", file=sys.stderr)
        raise


def _report_failures(scorer: ClusterScorer, args: argparse.Namespace) -> int:
    failures = scorer.outcome.failures
    if not failures:
        return 0
    paths = scorer.outcome.failed_paths
    print(f"error: {len(failures)} chunks ({len(paths)} images) failed on every try and were not scored:",
          file=sys.stderr)
    for path in paths:
        print(f"  {path}", file=sys.stderr)
    if not args.out:
        print("the run is left incomplete: once the cause is fixed, `--resume latest` scores just these images",
              file=sys.stderr)
    return 1
