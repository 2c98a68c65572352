"""The detector's contract: parameter count of Table VII, shapes, range, gradients, model files."""
from __future__ import annotations

import pytest
import torch

from vad.errors import ConfigError
from vad.models.detector import ARMSDetector, DetectorConfig, build_detector, count_parameters
from vad.models.io import ModelFileError, load_model, read_model_file, save_model


def test_parameter_count_matches_table_vii():
    n = count_parameters(build_detector(feature_dim=2048))
    assert n == 10_525_761
    assert abs(n - 10.53e6) <= 0.01e6


@pytest.mark.parametrize("feature_dim", [2048, 1024, 16])
@pytest.mark.parametrize("length", [1, 7, 32])
def test_shapes_range_and_gradients(feature_dim, length):
    torch.manual_seed(0)
    model = build_detector(feature_dim=feature_dim)
    scores = model(torch.randn(3, length, feature_dim))
    assert scores.shape == (3, length)
    assert torch.isfinite(scores).all() and (scores >= 0).all() and (scores <= 1).all()
    scores.mean().backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
    # The closed gate passes no gradient to the attention branch, only to itself.
    assert missing == ["attention.in_proj_weight", "attention.in_proj_bias", "attention.out_proj.weight", "attention.out_proj.bias"]
    assert torch.any(model.gate.weight.grad != 0)
    model.zero_grad()
    with torch.no_grad():
        model.gate.weight.fill_(1.0)
    model(torch.randn(3, length, feature_dim)).mean().backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
    # Open, it reaches everything (the output projection's bias only by rounding: the
    # BatchNorm's mean subtraction cancels it, as the bias of the convolution before RTFM's).
    assert not set(missing) - {"attention.out_proj.bias"}


def test_gate_starts_closed_so_the_detector_equals_its_per_snippet_path():
    torch.manual_seed(0)
    gated = build_detector(feature_dim=16, hidden_dim=32).eval()
    plain = build_detector(feature_dim=16, hidden_dim=32, attention=False).eval()
    plain.load_state_dict({k: v for k, v in gated.state_dict().items() if k in plain.state_dict()})
    assert torch.count_nonzero(gated.gate.weight) == 0 and torch.count_nonzero(gated.gate.bias) == 0
    x = torch.randn(2, 12, 16)
    assert torch.equal(gated(x), plain(x))
    gated.train()
    torch.manual_seed(1)
    in_training = gated(x)
    torch.manual_seed(1)
    plain.train()
    assert torch.equal(in_training, plain(x))  # in training mode too (batch statistics)
    with torch.no_grad():
        gated.gate.weight.fill_(1.0)
    assert not torch.allclose(gated.eval()(x), plain(x))


def test_xavier_initialisation_with_zero_biases():
    torch.manual_seed(0)
    model = build_detector(feature_dim=64, hidden_dim=32)
    bound = (6 / (64 * 3 + 32 * 3)) ** 0.5  # xavier_uniform on Conv1d(64 -> 32, k=3)
    assert model.conv.weight.abs().max() <= bound and model.conv.weight.abs().max() > 0.9 * bound
    bound = (6 / (32 + 32)) ** 0.5
    assert model.fc1.weight.abs().max() <= bound and model.fc1.weight.abs().max() > 0.8 * bound
    for bias in (model.conv.bias, model.fc1.bias, model.fc2.bias, model.attention.out_proj.bias):
        assert torch.count_nonzero(bias) == 0


def test_eval_mode_is_deterministic_and_bags_are_independent():
    torch.manual_seed(0)
    model = build_detector(feature_dim=32).eval()
    x = torch.randn(2, 10, 32)
    with torch.no_grad():
        both = model(x)
        first = model(x[:1])
    assert torch.allclose(model(x).detach(), both, atol=1e-6)
    assert torch.allclose(both[:1], first, atol=1e-6)


def test_model_file_round_trip_with_weights_only(tmp_path):
    torch.manual_seed(0)
    model = build_detector(feature_dim=24, dropout=0.5)
    save_model(tmp_path / "m.pt", model, feature={"backbone": "x", "feature_dim": 24}, iteration=3, ratios={"a": 0.25})
    payload = torch.load(tmp_path / "m.pt", weights_only=True)
    assert payload["detector"]["dropout"] == 0.5 and payload["ratios"] == {"a": 0.25}
    loaded, info = load_model(tmp_path / "m.pt")
    assert info["iteration"] == 3 and not loaded.training
    x = torch.randn(1, 5, 24)
    assert torch.allclose(loaded(x), model.eval()(x), atol=1e-6)
    assert not list(tmp_path.glob(".*tmp"))


def test_foreign_model_file_is_refused(tmp_path):
    torch.save({"weights": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(ModelFileError, match="not a vad detector"):
        read_model_file(tmp_path / "other.pt")
    with pytest.raises(ModelFileError, match="no such model file"):
        read_model_file(tmp_path / "missing.pt")


def test_config_round_trip():
    config = DetectorConfig(feature_dim=10, dropout=0.1)
    assert DetectorConfig.from_dict(config.to_dict()) == config
    assert isinstance(ARMSDetector(config).gate, torch.nn.BatchNorm1d)


def test_detector_without_attention_scores_each_snippet_from_its_neighbours():
    torch.manual_seed(0)
    model = build_detector(feature_dim=16, hidden_dim=32, attention=False).eval()
    assert not hasattr(model, "attention")
    assert count_parameters(model) == 16 * 32 * 3 + 32 + 32 * 32 + 32 + 32 + 1
    x = torch.randn(1, 20, 16)
    changed = x.clone()
    changed[0, 15:] += 5.0
    # The receptive field is 3 snippets: scores far from the change stay exactly the same.
    assert torch.equal(model(x)[0, :13], model(changed)[0, :13])
    with_attention = build_detector(feature_dim=16, hidden_dim=32).eval()
    assert torch.equal(with_attention(x)[0, :13], with_attention(changed)[0, :13])  # the gate starts closed
    with torch.no_grad():
        with_attention.gate.weight.fill_(1.0)
    assert not torch.equal(with_attention(x)[0, :13], with_attention(changed)[0, :13])


def test_torch_initialisation_keeps_pytorchs_default_and_a_closed_gate():
    torch.manual_seed(0)
    model = build_detector(feature_dim=64, hidden_dim=32, init="torch")
    bound = 1 / (64 * 3) ** 0.5  # kaiming_uniform(a=sqrt(5)) on Conv1d(64 -> 32, k=3)
    assert model.conv.weight.abs().max() <= bound and model.conv.weight.abs().max() > 0.9 * bound
    assert torch.count_nonzero(model.conv.bias) > 0 and torch.count_nonzero(model.gate.weight) == 0
    with pytest.raises(ConfigError, match="init 'he'"):
        build_detector(feature_dim=8, hidden_dim=8, init="he")
