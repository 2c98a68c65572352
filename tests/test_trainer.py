"""Pooling, pseudo labels, adaptive ratios, the phase plan, sampling and repeatable training."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from vad.errors import ConfigError
from vad.models.config import PRESETS, make_config
from vad.models.data import TrainingSet
from vad.models.monitors import pseudo_label_precision, segment_truth
from vad.models.phases import PHASES, get_phase
from vad.models.pooling import pool_segments, segment_bounds
from vad.models.pseudo import adaptive_ratios, estimate_abnormal_ratio, quartile_pseudo_labels
from vad.models.trainer import IndexStream, train
from vad.registry import UnknownName

from cpu_flags import CPUS, pretend_cpu


# -- pooling (docs/method.md, Training) ------------------------------------------------------
def test_pooling_long_video_averages_pairs():
    features = np.arange(64 * 3, dtype=np.float32).reshape(64, 3)
    pooled = pool_segments(features)
    assert pooled.shape == (32, 3)
    assert np.array_equal(pooled[0], (features[0] + features[1]) / 2)
    assert np.array_equal(pooled[31], (features[62] + features[63]) / 2)


def test_pooling_identity_at_32_and_crops_kept():
    features = np.random.default_rng(0).normal(size=(32, 10, 4)).astype(np.float32)
    assert np.array_equal(pool_segments(features), features)


def test_pooling_short_video_repeats_rows():
    # T = 5: b = floor(5 i / 32) = 0 x7, 1 x6, 2 x7, 3 x6, 4 x6, 5: every segment is row b[i]
    features = np.arange(5, dtype=np.float32)[:, None]
    expected = [0] * 7 + [1] * 6 + [2] * 7 + [3] * 6 + [4] * 6
    assert segment_bounds(5).tolist() == expected + [5]
    assert pool_segments(features)[:, 0].tolist() == expected


def test_pooling_single_snippet_and_empty():
    assert pool_segments(np.ones((1, 2), np.float32)).shape == (32, 2)
    with pytest.raises(ValueError):
        segment_bounds(0)


# -- pseudo labels and ratios --------------------------------------------------------------
def test_quartile_pseudo_labels():
    scores = np.array([0.5, 0.1, 0.8, 0.3, 0.7, 0.2, 0.6, 0.4])  # T = 8: 2 top, 2 bottom
    assert quartile_pseudo_labels(scores).tolist() == [-1, 0, 1, -1, 1, 0, -1, -1]
    labels = quartile_pseudo_labels(np.linspace(0, 1, 32))
    assert (labels == 1).sum() == 8 and (labels == 0).sum() == 8 and labels[-1] == 1 and labels[0] == 0


def test_quartile_pseudo_labels_ties_give_fixed_counts():
    labels = quartile_pseudo_labels(np.full(12, 0.5))
    assert (labels == 1).sum() == 3 and (labels == 0).sum() == 3


def test_adaptive_ratio_eq6_and_guard():
    assert estimate_abnormal_ratio(np.array([0.1, 0.4, 0.5, 0.9]), 0.4) == 0.75
    update = adaptive_ratios([np.array([0.1, 0.4, 0.5, 0.9]), np.array([0.1, 0.2, 0.1, 0.3])], np.array([0.4, 0.4]))
    assert update.ratios.tolist() == [0.75, 0.4]  # second estimate is 0: keeps its previous lambda
    assert update.estimates.tolist() == [0.75, 0.0] and update.guarded == 1
    capped = adaptive_ratios([np.ones(4)], np.array([0.4]), max_ratio=0.5)
    assert capped.ratios.tolist() == [0.5]


# -- phases and configuration ----------------------------------------------------------------
def test_phase_registry():
    assert list(PHASES) == ["bst", "ham", "as"]
    assert not get_phase("bst").uses_pseudo_labels and get_phase("ham").uses_pseudo_labels
    assert get_phase("as").needs_previous_iteration
    with pytest.raises(UnknownName, match="unknown phase"):
        get_phase("xyz")


def test_plans():
    assert make_config().plan() == ["bst", "ham", "as", "as", "as", "as"]
    assert make_config(phases=("bst",)).plan() == ["bst"]
    assert make_config(phases=("bst", "ham")).plan() == ["bst", "ham", "ham", "ham", "ham", "ham"]
    assert make_config(phases=("bst", "as"), iterations=3).plan() == ["bst", "as", "as"]
    assert make_config(schedule="traditional", loss="ms-topk", iterations=3).plan() == ["traditional"] * 3


@pytest.mark.parametrize("kwargs, message", [
    ({"phases": ("as", "bst")}, "needs a previous"),
    ({"phases": ("bst", "bst")}, "twice"),
    ({"loss": "ms-top1"}, "traditional"),
    ({"iterations": 2}, "at least 3"),
    ({"lambda_small": 0.0}, "lambda_small"),
    ({"detector": {"hidden_dim": 12}}, "multiple of the 8 attention heads"),
    ({"detector": {"dropout": 1.0}}, "dropout"),
])
def test_config_validation(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        make_config(**kwargs)


def test_schedule_registry_runs_each_schedule_by_name():
    from vad.models.phases import SCHEDULES, PhaseContext

    assert list(SCHEDULES) == ["arms", "traditional"]
    ctx = PhaseContext(n_abnormal=3, lambda_small=0.1, lambda_large=0.4, previous_ratios=None, previous_scores=None)
    arms = make_config(phases=("bst", "ham"), iterations=3)
    assert SCHEDULES["arms"].plan(arms) == arms.plan() == ["bst", "ham", "ham"]
    ham = SCHEDULES["arms"].setup(arms, 2, "ham", ctx)
    assert ham.ratios.ratios.tolist() == [0.4] * 3 and ham.uses_pseudo_labels and ham.loss == "ar"
    traditional = make_config(schedule="traditional", loss="ms-topk", lambda_fixed=0.3, iterations=2)
    assert SCHEDULES["traditional"].plan(traditional) == ["traditional"] * 2
    first, second = (SCHEDULES["traditional"].setup(traditional, k, "traditional", ctx) for k in (1, 2))
    assert first.ratios.ratios.tolist() == [0.3] * 3 and first.loss == "ms-topk"
    assert not first.uses_pseudo_labels and second.uses_pseudo_labels  # labels of the previous iteration


def test_an_unknown_schedule_is_one_line_naming_the_known_ones():
    with pytest.raises(ConfigError) as caught:
        make_config(schedule="co-training")
    assert str(caught.value) == "train: setting 'schedule' (--schedule): 'co-training' is not one of arms, traditional"


def test_detector_settings_go_through_the_detector_config():
    from vad.models.detector import DetectorConfig

    config = make_config(detector={"hidden_dim": 64, "attention": False, "dropout": None})
    assert config.detector == DetectorConfig(hidden_dim=64, attention=False)  # None keeps the default, as for every override
    assert make_config(detector=DetectorConfig(heads=4, hidden_dim=12)).detector.heads == 4
    with pytest.raises(ConfigError, match=r"no field 'hidden_dim' \(a detector field: pass detector="):
        make_config(hidden_dim=64)
    with pytest.raises(ConfigError, match="detector: no setting 'width'; the settings are attention, attention_dropout"):
        make_config(detector={"width": 64})


def test_train_config_round_trips_through_the_model_file_with_its_detector(tmp_path):
    from dataclasses import fields, replace

    from vad.models.config import TrainConfig
    from vad.models.detector import DetectorConfig
    from vad.models.io import load_model, save_model
    from vad.models.trainer import build_model

    # The flat form needs the two configs' field names apart.
    assert not {f.name for f in fields(TrainConfig)} & {f.name for f in fields(DetectorConfig)}
    detector = DetectorConfig(hidden_dim=24, heads=4, kernel_size=5, fc_dim=16, dropout=0.3, attention_dropout=0.1, init="torch")
    config = make_config(schedule="traditional", loss="ms-topk", topk=2, lambda_fixed=0.3, detector=detector, seed=3)
    save_model(tmp_path / "model.pt", build_model(config, 8), train=config.to_dict())
    model, payload = load_model(tmp_path / "model.pt")
    assert TrainConfig.from_dict(payload["train"]) == config
    assert model.config == DetectorConfig.from_dict(payload["detector"]) == replace(detector, feature_dim=8)


def test_train_config_reads_the_train_dict_of_older_model_files():
    """Before TrainConfig held a DetectorConfig, "train" stored these four of its fields only."""
    from vad.models.config import TrainConfig
    from vad.models.detector import DetectorConfig

    old = {**make_config().to_dict(), "hidden_dim": 16, "dropout": 0.5, "attention": False, "init": "torch"}
    for key in ("heads", "kernel_size", "fc_dim", "attention_dropout"):
        del old[key]
    config = TrainConfig.from_dict(old)
    assert config.detector == DetectorConfig(hidden_dim=16, dropout=0.5, attention=False, init="torch")
    assert config == make_config(detector={"hidden_dim": 16, "dropout": 0.5, "attention": False, "init": "torch"})


def test_presets_are_the_papers():
    sh = make_config("sh")
    assert (sh.lr, sh.epochs, sh.lambda_small, sh.lambda_large, sh.weight_decay, sh.beta) == (1e-3, 300, 0.1, 0.42, 5e-4, 0.5)
    ucf = make_config("ucf", epochs=3)
    assert (ucf.lr, ucf.epochs, ucf.lambda_small, ucf.lambda_large) == (1e-4, 3, 0.22, 0.4)
    assert set(PRESETS) == {"sh", "ucf", "xd"} and make_config("xd").lambda_small == 0.1


def test_index_stream_covers_class_then_repeats():
    stream = IndexStream(4, np.random.default_rng(0))
    first = stream.take(4)
    assert sorted(first.tolist()) == [0, 1, 2, 3]
    batch = stream.take(30)  # fewer videos than a batch: with replacement
    assert len(batch) == 30 and set(batch.tolist()) == {0, 1, 2, 3}


# -- precision of pseudo labels (Table VI) ------------------------------------------------------
def test_segment_truth_and_precision():
    # 64 snippets, 1024 frames; abnormal frames 0..511 -> segments 0..15
    truth = segment_truth([(0, 512)], 64, 1024, 32)
    assert truth.tolist() == [1] * 16 + [0] * 16
    data = TrainingSet([], ["a"], torch.zeros(0), torch.zeros(0), {"a": 64}, {"a": 1024})
    pseudo = np.full((1, 32), -1)
    pseudo[0, :8] = 1  # right
    pseudo[0, 8:12] = 0  # wrong: abnormal segments
    pseudo[0, 24:28] = 0  # right
    result = pseudo_label_precision(pseudo, data, {"a": [(0, 512)]}, 32)
    assert result == {"videos": 1, "precision": 12 / 16, "abnormal_precision": 1.0, "normal_precision": 0.5, "abnormal_recall": 8 / 16}


# -- training --------------------------------------------------------------------------------
def tiny_set(seed: int = 0, n: int = 6, dim: int = 8, crops: int = 2) -> TrainingSet:
    rng = np.random.default_rng(seed)
    normal = rng.normal(size=(n, crops, 32, dim)).astype(np.float32)
    abnormal = rng.normal(size=(n, crops, 32, dim)).astype(np.float32)
    abnormal[:, :, 10:18] += 2.0
    ids_n, ids_a = [f"n{i}" for i in range(n)], [f"a{i}" for i in range(n)]
    return TrainingSet(ids_n, ids_a, torch.from_numpy(normal), torch.from_numpy(abnormal),
                       {v: 32 for v in ids_n + ids_a}, {v: 512 for v in ids_n + ids_a})


def _train_once(**overrides):
    config = make_config(**{"epochs": 2, "min_steps": 0, "batch_videos": 4, "lr": 1e-3, "iterations": 3, "seed": 7, **overrides})
    seen = []
    result = train(config, tiny_set(), on_iteration=seen.append, progress=False)
    return result, seen


def test_training_is_repeatable_on_cpu_and_reinitialises():
    first, seen = _train_once()
    second, _ = _train_once()
    assert [r.phase for r in seen] == ["bst", "ham", "as"]
    for key, value in first.model.state_dict().items():
        assert torch.equal(value, second.model.state_dict()[key]), key
    # a fresh detector per iteration: iteration 1 and 3 start from different seeds and differ
    assert not torch.equal(seen[0].model.conv.weight, seen[2].model.conv.weight)
    metrics = seen[1].metrics
    assert metrics["pseudo_labels"] == {"abnormal_videos_1": 48, "abnormal_videos_0": 48, "unlabelled": 96, "normal_videos_0": 192}
    assert metrics["pseudo_labels_used"] and not seen[0].metrics["pseudo_labels_used"]
    assert seen[0].ratios.tolist() == [0.1] * 6 and seen[1].ratios.tolist() == [0.4] * 6
    assert set(metrics["train_monitors"]) == {"abnormal_video_mean", "normal_video_mean", "abnormal_within_video_std", "normal_within_video_std",
                                              "abnormal_share_above_0.5"}


@pytest.mark.parametrize("loss", ["ms-top1", "ms-topk", "ar"])
def test_traditional_schedule_runs(loss):
    result, seen = _train_once(schedule="traditional", loss=loss, iterations=2, epochs=1)
    assert [r.phase for r in seen] == ["traditional"] * 2 and seen[1].metrics["pseudo_labels_used"]
    assert all(np.isfinite(r.metrics["loss"]) for r in seen)


def test_width_and_attention_reach_the_detector_and_runaway_is_flagged(caplog):
    result, seen = _train_once(detector={"hidden_dim": 16, "attention": False}, iterations=3)
    assert result.model.config.hidden_dim == 16 and not result.model.config.attention
    assert all(r.metrics["lambda"]["runaway"] is False for r in seen[:2])
    from vad.models.pseudo import RatioUpdate
    from vad.models.trainer import _ratio_runaway

    high = RatioUpdate(np.full(4, 0.8), np.full(4, 0.8), 0)
    with caplog.at_level("WARNING", logger="vad"):
        assert _ratio_runaway(high, "as", 1.0)
    assert "--lambda-max" in caplog.text
    assert not _ratio_runaway(high, "ham", 1.0)
    assert not _ratio_runaway(RatioUpdate(np.full(4, 0.3), np.full(4, 0.3), 0), "as", 1.0)


def test_steps_have_a_floor():
    from vad.models.trainer import iteration_steps

    config = make_config(epochs=2, batch_videos=4, min_steps=0)
    assert iteration_steps(config, 6, 5) == 2 * 2  # two passes over 6 videos in batches of 4
    assert iteration_steps(make_config(epochs=2, batch_videos=4, min_steps=50), 6, 5) == 50
    assert iteration_steps(make_config(epochs=50, batch_videos=30), 800, 810) == 50 * 27  # UCF-Crime: above the floor


def test_crop_bags_mean_averages_each_crop_score():
    from vad.models.detector import build_detector
    from vad.models.trainer import bag_scores

    torch.manual_seed(0)
    model = build_detector(feature_dim=8, hidden_dim=16).eval()
    bags = torch.randn(3, 4, 32, 8)
    each = bag_scores(model, bags, "each")
    mean = bag_scores(model, bags, "mean")
    assert each.shape == (12, 32) and mean.shape == (3, 32)
    assert torch.allclose(mean, each.view(3, 4, 32).mean(dim=1))


@pytest.mark.parametrize("crop_bags", ["mean", "each"])
def test_training_with_either_crop_bags(crop_bags):
    result, seen = _train_once(crop_bags=crop_bags, iterations=2, phases=("bst", "ham"))
    assert [r.metrics["steps"] for r in seen] == [4, 4]
    assert 0 < seen[-1].metrics["detector"]["active_units"] <= 1


# -- optimiser, precision and batches (issue 16) ---------------------------------------------
def test_trainer_adam_matches_the_per_tensor_loop():
    """The trainer's Adam (foreach on the CPU) is the per-tensor loop's update up to float rounding."""
    from vad.models.detector import build_detector
    from vad.models.trainer import adam_implementation, make_optimizer

    config = make_config(lr=1e-2, weight_decay=5e-4)
    torch.manual_seed(0)
    model = build_detector(feature_dim=8, hidden_dim=16, dropout=0.0)
    plain = build_detector(feature_dim=8, hidden_dim=16, dropout=0.0)
    plain.load_state_dict(model.state_dict())
    start = [p.detach().clone() for p in model.parameters()]
    optimizers = [make_optimizer(model, config),
                  torch.optim.Adam(plain.parameters(), lr=1e-2, weight_decay=5e-4, foreach=False, fused=False)]
    bags = torch.randn(5, 4, 32, 8)
    for step in range(5):
        for net, optimizer in zip((model, plain), optimizers):
            optimizer.zero_grad()
            (net(bags[step]) ** 2).mean().backward()
            optimizer.step()
    assert optimizers[0].defaults["foreach"] and not optimizers[1].defaults["foreach"]
    assert all(not torch.equal(a, b) for a, b in zip(model.parameters(), start))  # every tensor moved
    for (name, a), b in zip(model.named_parameters(), plain.parameters()):
        assert torch.allclose(a, b, rtol=0, atol=1e-6), name
    assert adam_implementation(torch.device("cuda")) == "fused"


@pytest.mark.parametrize("cpu", sorted(CPUS))
def test_training_precision_auto_is_fp32_on_every_cpu(monkeypatch, cpu):
    """bf16 training is an opt-in on every CPU, AMX or not: paired runs moved the result by more
    than 0.005 (bench/TRAINING.md), and one seed should train one model on every CPU."""
    from vad.models.config import training_precision

    pretend_cpu(monkeypatch, cpu)
    assert training_precision(make_config()) == "fp32"
    assert training_precision(make_config(precision="bf16")) == "bf16"
    assert training_precision(make_config(precision="fp32")) == "fp32"
    with pytest.raises(ConfigError, match="precision"):
        make_config(precision="fp16")


def test_bf16_training_is_recorded_and_close_to_fp32():
    overrides = {"iterations": 2, "phases": ("bst", "ham"), "detector": {"hidden_dim": 16}}
    _, fp32 = _train_once(precision="fp32", **overrides)
    _, bf16 = _train_once(precision="bf16", **overrides)
    assert [r.metrics["precision"] for r in fp32 + bf16] == ["fp32"] * 2 + ["bf16"] * 2
    assert fp32[0].metrics["optimizer"] == "adam-foreach"
    a, b = fp32[-1].metrics["loss_curve"], bf16[-1].metrics["loss_curve"]
    assert a != b  # autocast did change the arithmetic ...
    assert np.allclose(a, b, atol=0.02)  # ... by bf16 rounding, not more


def test_batches_are_drawn_up_front_in_step_order():
    from vad.models.trainer import _sample_batches

    rng = np.random.default_rng(3)  # one generator for both streams, as in _fit
    n_stream, a_stream = IndexStream(5, rng), IndexStream(7, rng)
    normal, abnormal = _sample_batches(n_stream, a_stream, steps=6, size=4, device=torch.device("cpu"))
    rng = np.random.default_rng(3)
    n_step, a_step = IndexStream(5, rng), IndexStream(7, rng)
    for step in range(6):
        assert normal[step].tolist() == n_step.take(4).tolist() and abnormal[step].tolist() == a_step.take(4).tolist()
    assert normal.dtype == torch.int64 and normal.shape == (6, 4)


def test_mode_monitors_see_train_mode_without_touching_the_model_or_the_rng():
    """Eval-mode and train-mode scores side by side (issue 25): dropout 0.7 and the gate's batch
    statistics make them differ, and measuring that must not move the model or training's RNG."""
    from vad.models.detector import build_detector
    from vad.models.monitors import SATURATED_LOGIT, mode_monitors

    torch.manual_seed(0)
    model = build_detector(feature_dim=8, hidden_dim=16)
    abnormal, normal = torch.randn(5, 2, 32, 8), torch.randn(7, 2, 32, 8)
    with torch.no_grad():
        model.gate.weight.fill_(0.5)  # a live attention branch, so the BatchNorm matters
        before = model.eval()(abnormal[:, 0]).clone()
    buffers = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    monitors = mode_monitors(model, abnormal, normal)
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in buffers.items())
    with torch.no_grad():  # the same attention path as `before` (no_grad takes PyTorch's fused one)
        assert not model.training and torch.equal(model(abnormal[:, 0]), before)
    assert monitors["train_mode"]["mean_abs_difference_from_eval"] > 0  # dropout 0.7 is on in train mode
    assert 0 <= monitors["pre_sigmoid"]["saturated_share"] <= 1 and SATURATED_LOGIT == 6.0
    with torch.no_grad():
        model.fc2.bias.fill_(10.0)  # every logit far past the sigmoid's knee
    assert mode_monitors(model, abnormal, normal)["pre_sigmoid"]["saturated_share"] == 1.0
