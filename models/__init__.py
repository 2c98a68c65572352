"""The ARMS detector, its losses, the multi-phase self-training and score correction.

    from vad.models import Trainer, TrainConfig, DetectorConfig

    run = Trainer(TrainConfig(iterations=4, detector=DetectorConfig(hidden_dim=128)), out="run/").fit("cache/", "labels.csv")

The names below load on first use, so importing one module of the package (the detector, to
score) does not load the trainer and its evaluation.
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "Trainer": "vad.models.run",
    "Run": "vad.models.run",
    "Evaluation": "vad.models.run",
    "TrainConfig": "vad.models.config",
    "make_config": "vad.models.config",
    "PRESETS": "vad.models.config",
    "DetectorConfig": "vad.models.detector",
    "ARMSDetector": "vad.models.detector",
}


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'vad.models' has no attribute {name!r}")


__all__ = sorted(_EXPORTS)
