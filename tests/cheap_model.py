"""The cheap scoring model of the watch, Ray and fuzzing tests: the generated i3d-r50 weights at
112-pixel crops (about 0.1 s per snippet on a CPU) and an untrained no-attention detector whose
last layer is scaled so that scores sit mid-range instead of saturating at 0."""
from __future__ import annotations

from pathlib import Path

import torch

from vad.extract.backbones import get_backbone
from vad.extract.runner import ExtractConfig, cache_config
from vad.models.detector import build_detector
from vad.models.io import save_model
from vad.weights import sha256_file


def write_cheap_r50_model(path: Path, weights: Path) -> Path:
    spec = get_backbone("i3d-r50")
    torch.manual_seed(0)
    detector = build_detector(feature_dim=spec.feature_dim, hidden_dim=64, fc_dim=8, attention=False)
    with torch.no_grad():
        detector.fc2.weight.mul_(0.02)  # scores spread around 0.4 instead of saturating at 0
    feature = cache_config(spec, ExtractConfig(backbone="i3d-r50", crops=1, profile="direct"), sha256_file(weights))
    feature.update(short_side=128, crop_size=112)
    save_model(path, detector, feature=feature, phase="untrained")
    return path
