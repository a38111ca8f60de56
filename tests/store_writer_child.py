"""Writer process for the crash test, and the parent-side trial loop that kills it.

As a script: python tests/store_writer_child.py STORE SEED [MAX_WRITES]
    Prints "READY" once the store is open, then for every label "TRY <image> <label> <note>" before calling
    set_label and "ACK <image> <label> <note>" after it returned (stdout flushed each time), so the parent
    knows exactly which writes the API acknowledged and which single write may have been in flight when
    it sent SIGKILL. Every write sets a fresh note, so every write is a real change that reaches the file.

As a module: kill_trials() runs that script repeatedly against one store, SIGKILLs it at random moments,
reopens the store and checks every acknowledged label (used by tests/test_store.py and by
benchmarks/store_kill_bench.py, so the test and the benchmark check the same thing).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from core.store import Store  # noqa: E402

LABELS = ("good", "defect", "suspicious", "unlabeled")


def main(argv: list[str]) -> int:
    store_path, seed = argv[0], int(argv[1])
    max_writes = int(argv[2]) if len(argv) > 2 else 1_000_000
    rng = random.Random(seed)
    with Store.open(store_path) as store:
        n = store.n_images
        print("READY", flush=True)
        for k in range(max_writes):
            i = rng.randrange(n)
            label = rng.choice(LABELS)
            defect = rng.choice(("scratch", "dent", "")) if label in ("defect", "suspicious") else None
            note = f"s{seed}w{k}"
            print(f"TRY {i} {label} {note}", flush=True)
            store.set_label(i, label, defect_type=defect, note=note)
            print(f"ACK {i} {label} {note}", flush=True)
    print("DONE", flush=True)
    return 0


@dataclass
class KillStats:
    trials: int = 0
    early_kills: int = 0  # killed before the child reported READY (while starting or opening the store)
    acked: int = 0  # acknowledged writes over all trials
    lost: int = 0  # acknowledged writes missing (or with the wrong value) after the kill
    failed_opens: int = 0  # stores that would not open after a kill
    log_mismatches: int = 0  # reopened stores whose replayed audit log differs from the current labels
    repaired: int = 0  # opens that repaired the label table from the log (an un-acked write was torn)
    inflight_landed: int = 0  # un-acknowledged in-flight writes that nevertheless reached the file
    problems: list[str] = field(default_factory=list)


def _parse(out: str) -> tuple[dict[int, tuple[str, str]], tuple[int, str, str] | None, int]:
    acked: dict[int, tuple[str, str]] = {}
    inflight = None
    n_acks = 0
    for line in out.splitlines(keepends=True):
        parts = line.split()
        if not line.endswith("\n") or len(parts) != 4:
            continue  # a line cut by the kill
        kind, image, label, note = parts
        if kind == "TRY":
            inflight = (int(image), label, note)
        elif kind == "ACK":
            acked[int(image)] = (label, note)
            inflight = None
            n_acks += 1
    return acked, inflight, n_acks


def kill_trials(store_path: Path, n_trials: int, *, seed: int = 0, max_delay: float = 0.25,
                early_fraction: float = 0.15, stats: KillStats | None = None) -> KillStats:
    """SIGKILL a labeling writer n_trials times; after each kill the store must open and hold every
    acknowledged label (the one in-flight write may or may not have landed). State carries over between
    trials, so later trials also cover a grown audit log."""
    rng = random.Random(seed)
    stats = stats or KillStats()
    with Store.open(store_path) as store:
        expected = {r.image_id: (r.label, r.note) for r in store.labels()}
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for trial in range(n_trials):
        proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), str(store_path),
                                 str(seed * 100_003 + trial)],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        early = rng.random() < early_fraction
        head = ""
        if early:
            time.sleep(rng.uniform(0.0, 0.6))
        else:
            first = proc.stdout.readline() if proc.stdout else ""
            if first.strip() != "READY":
                proc.kill()
                rest = proc.stdout.read() if proc.stdout else ""
                proc.wait()
                raise RuntimeError(f"writer did not start: {first!r} {rest[-2000:]}")
            head = first
            # Kill after a random number of acknowledged writes, then a random moment inside the next ones: a
            # delay in seconds alone makes the test's coverage depend on how busy the machine is (on a loaded
            # machine the writer acknowledged too few labels before the kill).
            for _ in range(rng.randint(2, 16)):
                while proc.stdout:
                    line = proc.stdout.readline()
                    head += line
                    if not line or line.startswith(("ACK", "DONE")):
                        break
            time.sleep(rng.uniform(0.0, max_delay) * rng.random() ** 2)
        proc.send_signal(signal.SIGKILL)
        # Read through the same text wrapper that readline() used: it may already hold the next lines
        # (communicate() would read the raw pipe and silently drop them).
        out = head + (proc.stdout.read() if proc.stdout else "")
        proc.wait()
        stats.trials += 1
        stats.early_kills += early and "READY" not in out
        acked, inflight, n_acks = _parse(out)
        stats.acked += n_acks
        try:
            store = Store.open(store_path)
        except Exception as exc:  # any failure to open is what we count
            stats.failed_opens += 1
            stats.problems.append(f"trial {trial}: store did not open: {exc}")
            break
        with store:
            stats.repaired += bool(store.repaired_images)
            current = store.labels()
            for rec in current:
                got = (rec.label, rec.note)
                want = acked.get(rec.image_id, expected[rec.image_id])
                if inflight is not None and inflight[0] == rec.image_id and got == inflight[1:]:
                    stats.inflight_landed += 1
                elif got != want:
                    stats.lost += 1
                    stats.problems.append(f"trial {trial}: image {rec.image_id} has {got}, acknowledged {want} "
                                          f"(early kill: {early}, writer output tail: {out[-200:]!r})")
                expected[rec.image_id] = got
            if store.replay().labels != {r.image_id: r for r in current if r.source != "none"}:
                stats.log_mismatches += 1
                stats.problems.append(f"trial {trial}: replayed log differs from current labels")
    return stats


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
