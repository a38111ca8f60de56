"""Cluster scoring on a LocalCluster of 2 worker processes: the same scores as local scoring, every image exactly
once when a worker dies mid-run, unreadable files and failing chunks named, the `score --cluster` verb."""

from __future__ import annotations

import csv
import functools
import os
import time
from pathlib import Path

import numpy as np
import pytest

distributed = pytest.importorskip("distributed")

from core.cluster import ClusterScorer, ClusterUnavailable, connect, parse_address  # noqa: E402
from core.cluster.tasks import score_chunk  # noqa: E402
from core.data.folders import ImageItem  # noqa: E402
from core.data.image_source import decode_for  # noqa: E402
from core.detectors.registry import create  # noqa: E402
from core.evaluate import score_in_chunks  # noqa: E402
from core.project import project_items, store_items  # noqa: E402
from core.project.opening import open_project  # noqa: E402
from tests.test_streaming import write_frames  # noqa: E402

N_IMAGES = 22
CHUNK = 4  # 6 chunks, the last one short


@pytest.fixture(scope="module")
def client():
    with connect("local:2", timeout=60) as c:
        c.wait_for_workers(2, timeout=60)
        yield c


@pytest.fixture(scope="module")
def day(tmp_path_factory):
    """A generated day of frames, a gmm model trained on a few of them, and the local scores to match."""
    root = tmp_path_factory.mktemp("cluster")
    paths = write_frames(root / "day", N_IMAGES)
    det = create("gmm", image_size=32, patch_size=16, stride=8)
    det.fit([decode_for(p, 32) for p in paths[:6]])
    model = root / "gmm.ai"
    det.save(model)
    items = project_items(root / "day")
    local = score_in_chunks(det, items, log=lambda m: None).result
    return {"root": root, "model": model, "detector": det, "items": items, "local": local}


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def assert_matches_local(rows: list[dict[str, str]], day: dict, missing: set[str] = frozenset()) -> None:
    expect = {it.path: i for i, it in enumerate(day["items"]) if it.path not in missing}
    assert [r["path"] for r in rows] == list(expect)  # every image once, in order
    for comp, values in day["local"].components.items():
        got = np.array([float(r[comp]) for r in rows])
        np.testing.assert_allclose(got, values[list(expect.values())], rtol=1e-5)


def test_addresses_parse_and_say_what_is_wrong():
    assert parse_address("local:3").local_workers == 3
    assert parse_address("tcp://10.0.0.5:8786").scheduler == "tcp://10.0.0.5:8786"
    assert parse_address("sched.plant:8786").scheduler == "tcp://sched.plant:8786"
    with pytest.raises(ClusterUnavailable, match="local:N or tcp://HOST:PORT"):
        parse_address("spark://x")


def model_loads(plugin: str, dask_worker=None) -> int:
    return dask_worker.plugins[plugin].loads


def test_cluster_scores_equal_local_scores_in_order(client, day, tmp_path):
    out = tmp_path / "scores.csv"
    with ClusterScorer(client, day["model"], log=lambda m: None) as scorer:
        seen: list[tuple[int, int]] = []
        outcome = scorer.score_to_file(day["items"], out, chunk=CHUNK,
                                       progress=lambda done, total, info: seen.append((done, total)))
        loads = client.run(model_loads, scorer.plugin)
    assert outcome.n_images == N_IMAGES and not outcome.failures and not outcome.skipped
    assert_matches_local(read_csv(out), day)
    assert seen[-1] == (N_IMAGES, N_IMAGES) and [d for d, _ in seen] == sorted(d for d, _ in seen)
    # The model went to each worker once: built at most once per worker process, not per task.
    assert len(outcome.workers) == 2 and all(n <= 1 for n in loads.values())
    # Workers keep glibc's adaptive allocator (Dask's trim setting doubles the CPU of decoding and scoring).
    assert set(client.run(os.environ.get, "MALLOC_TRIM_THRESHOLD_").values()) == {None}


def test_into_the_project_store_as_one_run_equal_to_local(client, day, tmp_path):
    store = open_project(day["root"] / "day")
    with store, ClusterScorer(client, day["model"], log=lambda m: None) as scorer:
        items = store_items(store)
        run = scorer.score_into_store(store, day["detector"], items, chunk=CHUNK)
        info = store.run_info(run)
        assert info.complete and info.n_images == N_IMAGES
        ids = [store.image_id(it.path) for it in items]
        local = {it.path: s for it, s in zip(day["items"], day["local"].scores, strict=True)}
        np.testing.assert_allclose(store.scores(run)[ids], [local[it.path] for it in items], rtol=1e-5)
        comp = day["detector"].default_component
        assert store.maps(run, items[0].path)[comp].shape == day["local"].maps[comp][0].shape


def die_once(marker: str, model: str, index: int, paths: list[str], keep_maps: bool):
    """A task whose worker process dies (os._exit: no exception, no cleanup) the first time chunk 2 runs."""
    if index == 2:
        try:
            os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            pass
        else:
            os._exit(1)
    return score_chunk(model, index, paths, keep_maps)


def test_a_worker_killed_mid_run_still_yields_every_image_exactly_once(client, day, tmp_path):
    marker = tmp_path / "died"
    out = tmp_path / "scores.csv"
    with ClusterScorer(client, day["model"], log=lambda m: None) as scorer:
        outcome = scorer.score_to_file(day["items"], out, chunk=CHUNK, task=functools.partial(die_once,
                                                                                              str(marker)))
    assert marker.exists()  # a worker process really died mid-task
    assert outcome.n_images == N_IMAGES and not outcome.failures
    assert_matches_local(read_csv(out), day)
    client.wait_for_workers(2, timeout=60)  # the nanny restarts it for the tests after this one


def fail_on(poison: str, model: str, index: int, paths: list[str], keep_maps: bool):
    if any(Path(p).name == poison for p in paths):
        raise RuntimeError(f"decoder crashed on {poison}")
    return score_chunk(model, index, paths, keep_maps)


def test_a_corrupt_file_is_named_and_a_chunk_that_keeps_failing_is_reported_by_its_files(client, day,
                                                                                        tmp_path):
    items = list(day["items"])
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8 this is not a jpeg")
    items.insert(5, ImageItem(str(bad), "unsorted", "unknown"))
    poison = Path(items[15].path).name  # chunk 3 (items 12..15) fails on every try
    logs: list[str] = []
    out = tmp_path / "scores.csv"
    with ClusterScorer(client, day["model"], log=logs.append) as scorer:
        outcome = scorer.score_to_file(items, out, chunk=CHUNK, task=functools.partial(fail_on, poison))
    assert [p for p, _ in outcome.skipped] == [str(bad)]
    assert any(str(bad) in m and "skipped" in m for m in logs)
    (failure,) = outcome.failures
    assert failure.paths == [it.path for it in items[12:16]] and "decoder crashed" in failure.reason
    assert any("not scored" in m and items[12].path in m for m in logs)
    # The rest completed: every other image once, with the local scores.
    assert_matches_local(read_csv(out), day, missing={it.path for it in items[12:16]})


def test_the_score_verb_on_a_running_scheduler(client, day, tmp_path, capsys):
    from core.cli import main

    out = tmp_path / "verb.csv"
    assert main(["score", str(day["root"] / "day"), "--model", str(day["model"]), "--out", str(out),
                 "--cluster", client.scheduler.address]) == 0
    assert f"scored {N_IMAGES} images (0 skipped)" in capsys.readouterr().out
    assert_matches_local(read_csv(out), day)
    assert main(["score", str(day["root"] / "day"), "--model", str(day["model"]), "--out", str(tmp_path / "x.json"),
                 "--cluster", client.scheduler.address]) == 2
    assert ".csv or .parquet" in capsys.readouterr().err


def test_without_dask_the_verb_says_what_to_install(day, monkeypatch, capsys):
    import builtins

    from core.cli import main

    real_import = builtins.__import__

    def no_distributed(name, *args, **kwargs):
        if name == "distributed" or name.startswith("distributed."):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_distributed)
    assert main(["score", str(day["root"] / "day"), "--model", str(day["model"]), "--cluster", "local:2"]) == 2
    assert "pip install -e .[cluster]" in capsys.readouterr().err


def test_a_stop_cancels_the_tasks_and_the_run_resumes_on_the_cluster(client, day, tmp_path):
    from core.detectors.errors import Cancelled

    paths = write_frames(tmp_path / "day2", 12)
    store = open_project(tmp_path / "day2")
    handed: list[int] = []
    with store, ClusterScorer(client, day["model"], log=lambda m: None, window=2) as scorer:
        items = store_items(store)
        with pytest.raises(Cancelled):
            scorer.score_into_store(store, day["detector"], items, chunk=3, should_stop=lambda: len(handed) >= 1,
                                    on_chunk=lambda run, chunk_items, part: handed.append(len(chunk_items)))
        (info,) = store.list_runs()
        assert not info.complete and info.n_images == 3
        # Cancelled tasks are dropped; one already running finishes its chunk (a thread cannot be killed),
        # then nothing more runs for this job.
        deadline = time.monotonic() + 20
        while any(client.processing().values()) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(client.processing().values())
        run = scorer.score_into_store(store, day["detector"], items, run_id=info.run_id, chunk=3)
        assert run == info.run_id and store.run_info(run).complete and store.run_info(run).n_images == len(paths)


def test_parquet_output_when_pyarrow_is_installed(client, day, tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    out = tmp_path / "scores.parquet"
    with ClusterScorer(client, day["model"], log=lambda m: None) as scorer:
        scorer.score_to_file(day["items"], out, chunk=CHUNK)
    rows = pq.read_table(out).to_pylist()
    assert_matches_local([{k: str(v) for k, v in r.items()} for r in rows], day)
