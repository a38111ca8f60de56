"""Writer process for the crash test: labels images in a loop until it is killed.

Usage: python tests/store_writer_child.py STORE SEED [MAX_WRITES]

Prints "READY" once the store is open, then for every label "TRY <image> <label> <note>" before calling
set_label and "ACK <image> <label> <note>" after it returned (stdout flushed each time), so the parent
knows exactly which writes the API acknowledged and which single write may have been in flight when it
sent SIGKILL. Every write sets a fresh note, so every write is a real change that reaches the file.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

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


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
