"""A model file's network: the backbone its features came from and that backbone's weights,
checked before anything is scored or exported (a backbone, feature size or weights file other
than the one the detector was trained on would give silently wrong scores)."""
from __future__ import annotations

from pathlib import Path

from vad import weights as weights_store
from vad.errors import VadError
from vad.extract.backbones import PROFILES, BackboneSpec, backbone_names, get_backbone
from vad.extract.preprocess import CLIP_LEN, Geometry
from vad.extract.snippets import SnippetPlan
from vad.models.io import ModelFileError


class ScoreInputError(VadError):
    """The model, its weights or the requested options cannot score videos; the message says why."""




def model_feature(payload: dict, model: Path) -> dict:
    """The feature configuration a model file records (backbone, weights, crops, geometry), or ModelFileError."""
    feature = payload.get("feature")
    if not isinstance(feature, dict):
        raise ModelFileError(f"{model}: no feature configuration in the model file (write models with `vad train`)")
    return feature


def feature_spec(feature: dict, detector_dim: int, model_path: Path) -> BackboneSpec:
    """The backbone the model's features came from, after checking the recorded configuration is one we can reproduce."""
    name = feature.get("backbone")
    if name not in backbone_names():
        raise ScoreInputError(
            f"{model_path}: trained on features from backbone {name!r}, which vad cannot extract from raw video "
            f"(known: {', '.join(backbone_names())}); score such features from their cache with `vad eval`")
    spec = get_backbone(name)
    recorded = feature.get("feature_dim", spec.feature_dim)
    if not spec.feature_dim == recorded == detector_dim:
        raise ScoreInputError(
            f"{model_path}: its detector takes {detector_dim}-d features (file records {recorded}-d from {name}), "
            f"but {name} produces {spec.feature_dim}-d features; this model cannot score {name} features")
    if feature.get("crops") not in (1, 10):
        raise ScoreInputError(f"{model_path}: recorded crops {feature.get('crops')!r}; expected 1 or 10")
    if feature.get("profile", "reference") not in PROFILES:
        raise ScoreInputError(f"{model_path}: recorded profile {feature.get('profile')!r}; expected one of {', '.join(PROFILES)}")
    if feature.get("clip_len", CLIP_LEN) != CLIP_LEN:
        raise ScoreInputError(f"{model_path}: recorded snippets of {feature['clip_len']} frames; vad scores {CLIP_LEN}-frame snippets")
    return spec


def check_weights(spec: BackboneSpec, feature: dict, model: Path, weights: Path | None, allow_unverified: bool) -> Path:
    """The backbone weights file (`weights`, else resolved as `vad weights list` shows), refused
    when it is not the one the features of `model` came from."""
    path = weights_store.resolve(spec.weights, weights)
    recorded = feature.get("weights_sha256")
    if recorded and not allow_unverified:
        digest = weights_store.sha256_file(path)
        if digest != recorded:
            raise ScoreInputError(
                f"{path}: sha256 {digest[:12]}... is not the {spec.name} weights the model {model} was trained "
                f"with (sha256 {recorded[:12]}...); its features would not match the detector. Pass those weights with "
                f"--weights, or --allow-unverified-weights if you know the two files are equivalent")
    return path


def short(value):
    """A setting for a message: sha256 digests cut to 12 characters."""
    return f"{value[:12]}..." if isinstance(value, str) and len(value) == 64 else repr(value)




def snippet_plan(spec: BackboneSpec, feature: dict, decoder: str, geometry_on_device: bool) -> SnippetPlan:
    """How videos become the model's snippets: its crops, geometry and extraction profile (JPEG round trip)."""
    geometry = Geometry(clip_len=CLIP_LEN, short_side=feature.get("short_side", 256), crop_size=feature.get("crop_size", 224))
    return SnippetPlan(crops=feature["crops"], jpeg_quality=spec.jpeg_quality(feature.get("profile", "reference")), decoder=decoder,
                       geometry=geometry, geometry_on_device=geometry_on_device)
