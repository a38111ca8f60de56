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


def encode_maps(arrs: list[np.ndarray | None], hmax: int, wmax: int) -> tuple[np.ndarray, np.ndarray]:
    """Maps as a zero-padded float16 block, each divided by its largest finite magnitude, and those scales."""
    block = np.zeros((len(arrs), hmax, wmax), dtype=np.float16)
    scales = np.ones(len(arrs), dtype=np.float32)
    for j, a in enumerate(arrs):
        if a is None or a.size == 0:
            continue
        finite = np.abs(a[np.isfinite(a)])
        scales[j] = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
        block[j, :a.shape[0], :a.shape[1]] = (a / np.float32(scales[j])).astype(np.float16)
    return block, scales


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
        block, scales[start:start + MAP_BATCH] = encode_maps(arrs[start:start + MAP_BATCH], hmax, wmax)
        data[start:start + block.shape[0]] = block
    group.create_dataset("shape", data=shapes)
    group.create_dataset("scale", data=scales)


def read_map(group: h5py.Group, k: int) -> np.ndarray:
    """Map number k of a component group as float32, cut to its true shape and scaled back."""
    h, w = (int(v) for v in group["shape"][k])
    return group["data"][k, :h, :w].astype(np.float32) * np.float32(group["scale"][k])


def append_maps(group: h5py.Group, start: int, arrs: list[np.ndarray | None]) -> None:
    """Write maps for rows start.. of a growing run's component group (created on the first call; the padded
    stack widens when a larger map arrives). Rows at or beyond `start` are overwritten (left by a killed
    writer)."""
    n = start + len(arrs)
    shapes = np.array([(0, 0) if a is None else a.shape for a in arrs], dtype=np.int32).reshape(len(arrs), 2)
    hmax, wmax = max(1, int(shapes[:, 0].max(initial=0))), max(1, int(shapes[:, 1].max(initial=0)))
    if "data" not in group:
        group.create_dataset("data", shape=(0, hmax, wmax), maxshape=(None, None, None), dtype=np.float16,
                             chunks=(1, hmax, wmax), fillvalue=0, **MAP_COMPRESSION)
        group.create_dataset("shape", shape=(0, 2), maxshape=(None, 2), chunks=(4096, 2), dtype=np.int32)
        group.create_dataset("scale", shape=(0,), maxshape=(None,), chunks=(4096,), dtype=np.float32)
    data = group["data"]
    data.resize((n, max(hmax, data.shape[1]), max(wmax, data.shape[2])))
    group["shape"].resize((n, 2))
    group["scale"].resize((n,))
    block, scales = encode_maps(arrs, data.shape[1], data.shape[2])
    data[start:n] = block
    group["shape"][start:n] = shapes
    group["scale"][start:n] = scales
