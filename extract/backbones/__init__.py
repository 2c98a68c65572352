"""Backbone registry: each entry carries everything about a backbone that must not drift.

An entry binds the architecture's builder to its weights entry (file, hashes, converter), the
snippet geometry it was trained with, its input normalisation, the reference extractor's JPEG
rule and the names of its classes. Extraction, scoring and classification read these from the
entry, never from constants of their own (as torchvision binds transforms and metadata to its
`Weights`, and timm keeps checkpoint conversion beside the architecture).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources

import torch
from torch import nn

from vad.extract.preprocess import Geometry
from vad.registry import Registry
from vad.weights import WeightsEntry

# Extraction profiles: "reference" reproduces the backbone's reference extractor (its JPEG round
# trip included), "direct" feeds decoded frames straight to the resize.
PROFILES = ("reference", "direct")


@dataclass(frozen=True)
class BackboneSpec:
    name: str
    build: Callable[[], nn.Module]  # forward(x[B,3,clip_len,crop,crop] normalised) -> [B, feature_dim]
    feature_dim: int
    weights: WeightsEntry  # the pretrained file: where from, its hashes, its converter
    normalise: Callable[[torch.Tensor], torch.Tensor]  # float32 0..255 values -> network input
    normalisation: str  # what `normalise` computes, recorded in cache.json
    # `normalise` as x = v * scale + offset: (scale, offset), for exported networks' users, who
    # normalise without vad (vad-export.json); equal to `normalise` within float32 rounding (a test checks).
    affine: tuple[float, float]
    # Names of the classification head's classes, index i = name i (vad classify); None when the
    # class order of the released head is not known for certain.
    labels: Callable[[], list[str]] | None
    summary: str
    # The inference form of a loaded eval-mode network (backbones/inference.py): the same outputs
    # within the golden tolerance, computed faster. Extraction and scoring run it unless --exact.
    fast: Callable[[nn.Module], nn.Module]
    geometry: Geometry = field(default_factory=Geometry)  # clip length, resize, crop
    # JPEG quality of the reference extractor's frame round trip (profile "reference"); None = no JPEG step.
    reference_jpeg_quality: int | None = None

    def jpeg_quality(self, profile: str) -> int | None:
        """The JPEG round trip of extraction profile `profile` (None: none)."""
        return self.reference_jpeg_quality if profile == "reference" else None


BACKBONES: Registry[BackboneSpec] = Registry("backbone")


def register_backbone(spec: BackboneSpec) -> BackboneSpec:
    return BACKBONES.add(spec.name, spec)


def kinetics400_labels() -> list[str]:
    """The 400 Kinetics classes in DeepMind's label_map.txt order: class index i is line i+1."""
    text = resources.files("vad.extract.backbones").joinpath("kinetics400_labels.txt").read_text(encoding="utf-8")
    return text.splitlines()


def _load_builtin() -> None:
    # Imported here, not at module top, so that the registry module has no import cycle
    # with the architecture modules that register themselves.
    from vad.extract.backbones import (
        i3d_r50,  # noqa: F401
        inception_i3d,  # noqa: F401
    )


def backbone_names() -> list[str]:
    _load_builtin()
    return sorted(BACKBONES)


def get_backbone(name: str) -> BackboneSpec:
    _load_builtin()
    return BACKBONES[name]
