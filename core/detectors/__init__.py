"""Anomaly detectors behind one contract.

One package per family (patch/, pca/, oiad/, features/); families never import each other. What they share is
written once at this level: the Detector interface (base.py, errors.py), score results and map geometry
(results.py), shared settings (settings.py), colour channels (channels.py), torch device / seeding / weights
(torch_runtime.py), the training loop (training_loop.py), the model file format (model_file.py), the
sliding-window base of the patch and PCA families (patch_base.py, pca_patch.py, sliding_windows.py,
mixtures.py), and the registry by name (registry.py). Importing this package imports no detector.
"""
