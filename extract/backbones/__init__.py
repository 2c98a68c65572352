"""Backbone registry: each entry binds an architecture to its weights and preprocessing.

An entry carries everything that must not drift between extraction runs :
the builder, the weights manifest name, the feature dimension and the normalisation.
Extraction reads preprocessing from the entry, never from scattered constants.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from vad.registry import Registry


@dataclass(frozen=True)
class BackboneSpec:
    name: str
    build: Callable[[], nn.Module]  # forward(x[B,3,16,224,224] normalised) -> [B, feature_dim]
    feature_dim: int
    weights: str  # entry name in weights/manifest.json
    normalise: Callable[[torch.Tensor], torch.Tensor]  # float32 0..255 values -> network input
    summary: str
    # JPEG quality of the reference extractor's frame round trip (profile "reference"); None = no JPEG step.
    reference_jpeg_quality: int | None = None


BACKBONES: Registry[BackboneSpec] = Registry("backbone")


def register_backbone(spec: BackboneSpec) -> BackboneSpec:
    return BACKBONES.add(spec.name, spec)


def _load_builtin() -> None:
    # Imported here, not at module top, so that the registry module has no import cycle
    # with the architecture modules that register themselves.
    from vad.extract.backbones import i3d_r50  # noqa: F401
    from vad.extract.backbones import inception_i3d  # noqa: F401


def backbone_names() -> list[str]:
    _load_builtin()
    return sorted(BACKBONES)


def get_backbone(name: str) -> BackboneSpec:
    _load_builtin()
    return BACKBONES[name]
