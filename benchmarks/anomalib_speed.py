"""Speed of anomalib's PatchCore and PaDiM torch models on CPU, for comparison with ours (feature_bench.py).

Runs in a SEPARATE virtual environment that has anomalib (never the product's):

    python3 -m venv /work/venv-anomalib
    /work/venv-anomalib/bin/pip install torch==2.13.0 anomalib

Two honest caveats, both printed in the JSON output:
- The backbones (wide_resnet50_2 for PatchCore, resnet18 for PaDiM, anomalib's defaults) cannot be downloaded
  here, so they run with random initialisation (`pre_trained=False`). The compute is the same; the scores are
  meaningless, so only times are reported.
- PyPI's torchvision 0.28 ships a C extension linked against the CUDA build of torch; beside the CPU build it
  cannot load, and `import torchvision` then fails while registering fake kernels for its detection ops
  (nms, roi_align, ...). anomalib's PatchCore and PaDiM never call those ops, so this script turns those
  registrations into no-ops before importing anomalib. Nothing else is patched.

The model's own torch module is timed (feature extraction, embedding, coreset / Gaussian fit, nearest-neighbour
or Mahalanobis scoring, anomaly maps), not the Lightning engine, data loaders or metrics. Images are decoded
and resized to the same square side as ours, outside the timed region (ours times its own resizing).

Usage: anomalib_speed.py --images-json FILE --out FILE [--threads 2] [--image-size 224]
where the images JSON is {"train": [paths], "test": [paths]} (written by feature_bench.py).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time


def _stub_torchvision_fake_ops() -> None:
    import torch.library

    original = torch.library.register_fake

    def register_fake(op, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        name = op if isinstance(op, str) else getattr(op, "__name__", "")
        if isinstance(name, str) and name.startswith("torchvision::"):
            return lambda fn=None, *a, **k: fn  # decorator that leaves the function as it is
        return original(op, *args, **kwargs)

    torch.library.register_fake = register_fake


def load(paths: list[str], size: int):
    import cv2
    import numpy as np
    import torch

    arrays = []
    for p in paths:
        img = cv2.imdecode(np.fromfile(p, dtype=np.uint8), cv2.IMREAD_COLOR)  # gray -> 3 channels
        img = cv2.resize(img[:, :, ::-1], (size, size), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
        arrays.append(img)
    x = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)
    mean = torch.tensor((0.485, 0.456, 0.406)).view(1, 3, 1, 1)
    std = torch.tensor((0.229, 0.224, 0.225)).view(1, 3, 1, 1)
    return ((x - mean) / std).contiguous()


def time_scoring(model, test, batch: int) -> dict:
    """Seconds and images/s of anomalib's model in eval mode over the test images."""
    import torch

    model.eval()
    t1 = time.perf_counter()
    with torch.inference_mode():
        for i in range(0, len(test), batch):
            model(test[i:i + batch])
    t_score = time.perf_counter() - t1
    return {"score_seconds": round(t_score, 2), "score_images_per_second": round(len(test) / t_score, 3)}


def run_patchcore(train, test, batch: int, ratio: float) -> dict:
    from anomalib.models.image.patchcore.torch_model import PatchcoreModel

    model = PatchcoreModel(backbone="wide_resnet50_2", layers=("layer2", "layer3"), pre_trained=False,
                           num_neighbors=9)
    model.train()
    t0 = time.perf_counter()
    for i in range(0, len(train), batch):
        model(train[i:i + batch])
    t_feat = time.perf_counter() - t0
    model.subsample_embedding(ratio)
    t_train = time.perf_counter() - t0
    score = time_scoring(model, test, batch)
    return {"train_seconds": round(t_train, 2), "train_feature_seconds": round(t_feat, 2),
            "coreset_seconds": round(t_train - t_feat, 2), "bank_size": int(model.memory_bank.shape[0]),
            "feature_dim": int(model.memory_bank.shape[1]),
            "train_images_per_second": round(len(train) / t_train, 3), **score}


def run_padim(train, test, batch: int) -> dict:
    import torch
    from anomalib.models.image.padim.torch_model import PadimModel

    model = PadimModel(backbone="resnet18", layers=["layer1", "layer2", "layer3"], pre_trained=False,
                       n_features=100)
    model.train()
    t0 = time.perf_counter()
    with torch.no_grad():
        for i in range(0, len(train), batch):
            model(train[i:i + batch])
        model.fit()
    t_train = time.perf_counter() - t0
    score = time_scoring(model, test, batch)
    return {"train_seconds": round(t_train, 2), "train_images_per_second": round(len(train) / t_train, 3), **score}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images-json", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--coreset-ratio", type=float, default=0.1)
    ap.add_argument("--models", default="patchcore,padim")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    _stub_torchvision_fake_ops()
    import anomalib

    spec = json.loads(open(args.images_json, encoding="utf-8").read())
    train = load(spec["train"], args.image_size)
    test = load(spec["test"], args.image_size)
    out = {"anomalib": anomalib.__version__, "torch": torch.__version__, "threads": torch.get_num_threads(),
           "image_size": args.image_size, "n_train": len(train), "n_test": len(test),
           "pre_trained": False,
           "note": "backbones randomly initialised (no download possible here): times only, scores meaningless",
           "loadavg_before": list(os.getloadavg())}
    models = args.models.split(",")
    if "patchcore" in models:
        out["patchcore"] = run_patchcore(train, test, args.batch_size, args.coreset_ratio)
        out["patchcore"]["backbone"] = "wide_resnet50_2 layer2+layer3 (anomalib default)"
    if "padim" in models:
        out["padim"] = run_padim(train, test, args.batch_size)
        out["padim"]["backbone"] = "resnet18 layer1-3, 100 features (anomalib default)"
    out["loadavg_after"] = list(os.getloadavg())
    with open(args.out, "w", encoding="utf-8") as fh:
        json.dump(out, fh, indent=2)
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
