"""How a run's anomaly maps are stored and read back (see "Maps" in docs/store-format.md).

A padded stack (n, Hmax, Wmax) float16, one gzip chunk per image, with each map's true shape and scale
beside it. Each map is divided by its largest finite magnitude before the cast, so float16 neither
overflows (scores above 65504) nor flushes small maps to zero; reading multiplies the scale back.
"""

from __future__ import annotations

import h5py
import numpy as np

MAP_BATCH = 256  # maps written per HDF5 call when a run is stored
MAP_COMPRESSION = {"compression": "gzip", "compression_opts": 4, "shuffle": True}


def write_maps(group: h5py.Group, arrs: list[np.ndarray | None]) -> None:
    """Write one component's maps (None for an image without a map) into an empty group."""
    n = len(arrs)
    shapes = np.array([(0, 0) if a is None else a.shape for a in arrs], dtype=np.int32).reshape(n, 2)
    hmax = max(1, int(shapes[:, 0].max(initial=0)))
    wmax = max(1, int(shapes[:, 1].max(initial=0)))
    scales = np.ones(n, dtype=np.float32)
    data = group.create_dataset("data", shape=(n, hmax, wmax), dtype=np.float16, chunks=(1, hmax, wmax),
                                fillvalue=0, **MAP_COMPRESSION)
    for start in range(0, n, MAP_BATCH):
        block = np.zeros((min(MAP_BATCH, n - start), hmax, wmax), dtype=np.float16)
        for j, a in enumerate(arrs[start:start + MAP_BATCH]):
            if a is None or a.size == 0:
                continue
            finite = np.abs(a[np.isfinite(a)])
            scale = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
            scales[start + j] = scale
            block[j, :a.shape[0], :a.shape[1]] = (a / np.float32(scale)).astype(np.float16)
        data[start:start + block.shape[0]] = block
    group.create_dataset("shape", data=shapes)
    group.create_dataset("scale", data=scales)


def read_map(group: h5py.Group, k: int) -> np.ndarray:
    """Map number k of a component group as float32, cut to its true shape and scaled back."""
    h, w = (int(v) for v in group["shape"][k])
    return group["data"][k, :h, :w].astype(np.float32) * np.float32(group["scale"][k])
