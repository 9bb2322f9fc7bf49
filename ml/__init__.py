"""Everything that touches a model: preprocessing, the model factory, inference, calibration,
routing thresholds and training.

Plain PyTorch/timm/numpy/Pillow; no Django imports here, so the package can be used from a
Celery worker, a management command, a benchmark or a notebook alike. Submodules are imported
explicitly (``from ml.training import train``) so that importing ``ml`` stays cheap.
"""
