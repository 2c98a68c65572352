"""`vad train` and `vad eval` end to end on a tiny synthetic cache, in-process (CliRunner)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from vad.errors import ConfigError
from vad.extract.cache import FeatureCache
from vad.hardware import ARITHMETIC_FLAGS
from vad.pipeline.cli import main
from vad.tables import write_gt, write_labels

DIM, CROPS = 8, 2


def vad(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Abnormal videos carry a shifted feature on a known span of snippets; frames = 16 * T - 5."""
    root = tmp_path_factory.mktemp("world")
    rng = np.random.default_rng(0)
    cache = FeatureCache(root / "cache")
    cache.ensure_config({"backbone": "synthetic", "feature_dim": DIM, "crops": CROPS, "clip_len": 16})
    train, test, gt, train_gt = {}, {}, {}, {}
    for split, n in (("train", 6), ("test", 4)):
        for i in range(n):
            for label in (0, 1):
                video = f"{split}/{'abnormal' if label else 'normal'}_{i}"
                length = int(rng.integers(20, 48))
                features = rng.normal(size=(length, CROPS, DIM)).astype(np.float32)
                if label:
                    start = int(rng.integers(0, length // 2))
                    end = start + length // 3
                    features[start:end] += 2.0
                    (gt if split == "test" else train_gt)[video] = [(16 * start, 16 * end)]
                cache.write(video, features, {"n_frames": 16 * length - 5})
                (train if split == "train" else test)[video] = label
    write_labels(root / "train.csv", train)
    write_labels(root / "test.csv", test)
    write_gt(root / "gt.csv", gt)
    write_gt(root / "train_gt.csv", train_gt)
    return root


def train_args(world, out, *extra):
    return ["train", "--cache", world / "cache", "--labels", world / "train.csv", "--eval-labels", world / "test.csv",
            "--gt", world / "gt.csv", "--epochs", 2, "--min-steps", 0, "--batch-videos", 4, "--lr", 1e-3, "--iterations", 3,
            "--device", "cpu", "--train-gt", world / "train_gt.csv", "--out", out, "-q", *extra]


@pytest.fixture(scope="module")
def run(world):
    out = world / "run"
    result = vad(*train_args(world, out))
    assert result.exit_code == 0, result.output
    return out, json.loads(result.stdout)


def test_train_writes_model_checkpoints_metrics_log(run):
    out, summary = run
    assert summary["iterations"] == 3 and summary["final"]["phase"] == "as"
    assert {p.name for p in out.iterdir()} >= {"model.pt", "iter_1.pt", "iter_2.pt", "iter_3.pt", "metrics.json", "train.log"}
    payload = torch.load(out / "model.pt", weights_only=True)
    assert payload["feature"]["feature_dim"] == DIM and payload["feature"]["crops"] == CROPS
    assert payload["train"]["phases"] == ["bst", "ham", "as"] and payload["detector"]["dropout"] == 0.7
    assert len(payload["ratios"]) == 6
    metrics = json.loads((out / "metrics.json").read_text())
    assert [m["phase"] for m in metrics["iterations"]] == ["bst", "ham", "as"]
    last = metrics["iterations"][-1]
    assert {"loss", "loss_curve", "lambda", "pseudo_labels", "train_monitors", "eval"} <= set(last)
    assert {"mean", "std", "min", "max", "guard_fired"} <= set(last["lambda"])
    assert 0 <= last["eval"]["auc"] <= 1 and last["eval"]["n_videos"] == 8
    assert {"auc_abnormal", "ap_abnormal", "spread_abnormal", "false_alarm_rate"} <= set(last["eval"])
    assert "abnormal_video_share_above_0.5" in last["eval"]["monitors"]
    assert "iteration 3 (as)" in (out / "train.log").read_text()
    precision = last["pseudo_label_precision"]
    assert precision["videos"] == 6 and 0 <= precision["precision"] <= 1


def test_eval_json_and_correction(world, run):
    out, summary = run
    common = ["eval", "--model", out / "model.pt", "--cache", world / "cache", "--labels", world / "test.csv",
              "--gt", world / "gt.csv", "--device", "cpu", "--json", "-q"]
    result = vad(*common)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert {"auc", "ap", "ap_trapezoid", "score_gap", "n_videos", "n_frames"} <= set(data)
    assert data["auc"] == pytest.approx(summary["final"]["auc"])
    assert data["n_frames"] == sum(16 * FeatureCache(world / "cache").load(v).shape[0] - 5
                                   for v in ("test/normal_0", "test/normal_1", "test/normal_2", "test/normal_3",
                                             "test/abnormal_0", "test/abnormal_1", "test/abnormal_2", "test/abnormal_3"))
    raw = json.loads(vad(*common, "--no-correction").stdout)
    assert raw["correction"] is False and data["correction"] is True
    text = vad(*common[:-2])
    assert "AUC" in text.stdout and "AP trapezoid" in text.stdout and "AUC_A" in text.stdout and "false alarms" in text.stdout


def test_eval_localisation_keys_and_scores_out(world, run, tmp_path):
    """AUC_A, AP_A, spread and false alarms equal a by-hand computation on the --scores-out files."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    from vad.models.evaluate import frame_labels
    from vad.tables import read_gt, read_labels

    out, _ = run
    result = vad("eval", "--model", out / "model.pt", "--cache", world / "cache", "--labels", world / "test.csv",
                 "--gt", world / "gt.csv", "--device", "cpu", "--json", "--scores-out", tmp_path / "scores", "-q")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    labels, gt = read_labels(world / "test.csv"), read_gt(world / "gt.csv")
    curves = {}
    for video in labels:
        lines = (tmp_path / "scores" / f"{video}.csv").read_text().splitlines()
        assert lines[0] == "frame,score"
        assert [int(line.split(",")[0]) for line in lines[1:]] == list(range(16 * FeatureCache(world / "cache").load(video).shape[0] - 5))
        curves[video] = np.array([float(line.split(",")[1]) for line in lines[1:]])
    abnormal = [v for v in labels if labels[v]]
    scores = np.concatenate([curves[v] for v in abnormal])
    truth = np.concatenate([frame_labels(gt[v], len(curves[v])) for v in abnormal])
    assert data["auc_abnormal"] == pytest.approx(roc_auc_score(truth, scores), abs=1e-5)
    assert data["ap_abnormal"] == pytest.approx(average_precision_score(truth, scores), abs=1e-4)
    assert data["spread_abnormal"] == pytest.approx(np.mean([curves[v].std() for v in abnormal]), abs=1e-5)
    normal = np.concatenate([curves[v] for v in labels if not labels[v]])
    assert data["false_alarm_rate"] == pytest.approx((normal > 0.5).mean())


def test_model_records_its_provenance(world, run):
    out, _ = run
    payload = torch.load(out / "model.pt", weights_only=True)
    origin = payload["provenance"]
    assert origin["train_videos"] == {"normal": 6, "abnormal": 6, "total": 12}
    assert origin["backbone"] == "synthetic" and origin["cache"] == str((world / "cache").resolve())
    assert origin["generated_footage"] is False and origin["command"].startswith("vad train --cache ")
    # the health check reads every iteration, so only the final model records it
    assert torch.load(out / "iter_1.pt", weights_only=True)["provenance"] == {k: v for k, v in origin.items() if k != "health"}


def test_metrics_log_steps_units_spread_lambda_and_gate(run):
    out, _ = run
    metrics = json.loads((out / "metrics.json").read_text())
    for it in metrics["iterations"]:
        assert it["steps"] == 2 * 2  # --epochs 2 x ceil(6 / 4) steps, above --min-steps 0
        assert 0 < it["detector"]["active_units"] <= 1
        assert it["detector"]["gate"]["weight_abs_mean"] > 0  # training opened the gate a little
        assert it["train_monitors"]["abnormal_within_video_std"] >= 0
        assert {"mean", "std", "min", "max", "guard_fired", "runaway"} <= set(it["lambda"])


def test_resume_reproduces_the_last_iteration(world, run):
    out, _ = run
    resumed = world / "resumed"
    resumed.mkdir()
    metrics = json.loads((out / "metrics.json").read_text())
    metrics["iterations"] = metrics["iterations"][:2]
    for key in ("heads", "kernel_size", "fc_dim", "attention_dropout"):  # as a run from before the config held them
        del metrics["config"][key]
    (resumed / "metrics.json").write_text(json.dumps(metrics))
    for k in (1, 2):
        (resumed / f"iter_{k}.pt").write_bytes((out / f"iter_{k}.pt").read_bytes())
    result = vad(*train_args(world, resumed, "--resume"))
    assert result.exit_code == 0, result.output
    a = torch.load(out / "model.pt", weights_only=True)["state_dict"]
    b = torch.load(resumed / "model.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    again = vad(*train_args(world, resumed, "--resume"))
    assert again.exit_code == 2 and "finished" in again.stderr


def test_traditional_baseline_runs(world, tmp_path):
    result = vad("train", "--cache", world / "cache", "--labels", world / "train.csv", "--schedule", "traditional",
                 "--loss", "ms-topk", "--iterations", 2, "--epochs", 1, "--min-steps", 0, "--batch-videos", 4, "--out", tmp_path / "t", "-q",
                 "--hidden-dim", 16, "--dropout", 0.5, "--init", "torch", "--no-attention")
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "t" / "metrics.json").read_text())
    assert [m["phase"] for m in metrics["iterations"]] == ["traditional", "traditional"]
    assert metrics["config"]["loss"] == "ms-topk"
    # The detector flags reach the trained detector, and metrics.json and the model file record them.
    payload = torch.load(tmp_path / "t" / "model.pt", weights_only=True)
    flags = {"hidden_dim": 16, "dropout": 0.5, "init": "torch", "attention": False}
    assert flags.items() <= payload["detector"].items() and flags.items() <= payload["train"].items() <= metrics["config"].items()
    assert {k: v for k, v in payload["detector"].items() if k != "feature_dim"}.items() <= payload["train"].items()


@pytest.mark.parametrize("extra, message", [
    (["--labels", "missing.csv"], "missing.csv: no such file"),
    (["--phases", "as,bst"], "needs a previous"),
    (["--schedule", "arms", "--loss", "ms-top1"], "traditional"),
    (["--gt", "x.csv"], "go together"),
])
def test_bad_input_exit_2(world, tmp_path, extra, message):
    args = ["train", "--cache", world / "cache", "--labels", world / "train.csv", "--out", tmp_path / "o", *extra]
    result = vad(*args)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("vad: error:") and message in result.stderr


def test_existing_run_is_not_overwritten(world, run):
    out, _ = run
    result = vad("train", "--cache", world / "cache", "--labels", world / "train.csv", "--out", out)
    assert result.exit_code == 2 and "--resume" in result.stderr


def test_help_documents_every_flag():
    text = CliRunner().invoke(main, ["train", "--help"]).output
    for flag in ("--phases", "--iterations", "--schedule", "--loss", "--preset", "--epochs", "--lr", "--weight-decay",
                 "--batch-videos", "--lambda-small", "--lambda-large", "--beta", "--seed", "--eval-labels", "--gt",
                 "--device", "--out", "--resume", "--train-gt"):
        assert flag in text
    assert "[default: bst,ham,as]" in text


def test_precision_flag_is_documented_and_recorded(world, run):
    text = " ".join(CliRunner().invoke(main, ["train", "--help"]).output.split())
    assert "--precision [auto|fp32|bf16]" in text and "AMX" in text and "[default: auto]" in text
    out, _ = run
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["config"]["precision"] == "auto"
    assert [it["precision"] for it in metrics["iterations"]] == ["fp32"] * 3  # auto: fp32 on every CPU


def test_metrics_and_model_record_the_arithmetic(run):
    """Which CPU, flags, precisions, torch and threads made a model: what tells two runs' last digits apart."""
    import platform

    out, _ = run
    recorded = json.loads((out / "metrics.json").read_text())["arithmetic"]
    assert recorded["device"] == "cpu" and recorded["torch"] == torch.__version__ and recorded["threads"] == torch.get_num_threads()
    # the cache entries of this world record no extraction precision (written by hand, as imported features are)
    assert recorded["precision"] == {"features": "unknown", "training": "fp32"}
    assert recorded["cpu"] and set(recorded["cpu_flags"]) <= set(ARITHMETIC_FLAGS)
    if platform.system() == "Linux":  # the flags come from /proc/cpuinfo
        flags = set(open("/proc/cpuinfo").read().split())
        assert set(recorded["cpu_flags"]) == flags & set(ARITHMETIC_FLAGS)
    payload = torch.load(out / "model.pt", weights_only=True)
    assert payload["provenance"]["arithmetic"] == recorded


def test_health_is_printed_recorded_and_strict_exits_1(world, tmp_path):
    """Two epochs on this tiny world leave BST flat and anti-localised (AUC_A about 0.05), and HAM
    trains on its pseudo labels: the failure the health check exists for."""
    result = vad(*train_args(world, tmp_path / "run"), "--strict")
    assert result.exit_code == 1
    assert result.stderr.count("vad: error: --strict: the health check warned") == 1
    assert "warning: iteration 1 (bst) ended flat (abnormal within-video std" in result.stderr
    assert "health: flat iterations [1" in (tmp_path / "run/train.log").read_text()
    metrics = json.loads((tmp_path / "run/metrics.json").read_text())
    summary = metrics["health"]
    assert not summary["ok"] and 1 in summary["flat_iterations"] and 1 in summary["anti_localised_iterations"]
    assert summary["pseudo_label_agreement"][0] is None
    assert [it["pseudo_label_agreement"] for it in metrics["iterations"]] == summary["pseudo_label_agreement"]
    assert json.loads(result.stdout)["health"] == {"ok": False, "warnings": len(summary["warnings"])}
    # everything is still written, and the model says how its run went
    assert torch.load(tmp_path / "run/model.pt", weights_only=True)["provenance"]["health"] == summary
    assert "--strict" in " ".join(CliRunner().invoke(main, ["train", "--help"]).output.split())


def test_the_trainer_is_what_vad_train_runs(world, run, tmp_path):
    """vad.models.Trainer with the settings of `vad train` trains the same model, bit for bit; its
    callbacks see every iteration and what they add to the metrics lands in metrics.json."""
    from vad.models import DetectorConfig, TrainConfig, Trainer

    seen = []

    def callback(result, metrics):
        seen.append((result.iteration, result.phase))
        metrics["callback"] = result.iteration

    config = TrainConfig(epochs=2, min_steps=0, batch_videos=4, lr=1e-3, iterations=3, device="cpu", detector=DetectorConfig())
    trained = Trainer(config, out=tmp_path / "run", progress=False, callbacks=[callback], command="test").fit(
        world / "cache", world / "train.csv", eval_labels=world / "test.csv", gt=world / "gt.csv", train_gt=world / "train_gt.csv")
    assert seen == [(1, "bst"), (2, "ham"), (3, "as")] and [m["callback"] for m in trained.metrics] == [1, 2, 3]
    assert json.loads((tmp_path / "run/metrics.json").read_text())["iterations"][-1]["callback"] == 3
    a = torch.load(run[0] / "model.pt", weights_only=True)["state_dict"]
    b = torch.load(trained.model, weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert trained.health == json.loads((run[0] / "metrics.json").read_text())["health"]
    with pytest.raises(ConfigError, match="Trainer: config takes a TrainConfig, got dict"):
        Trainer({"epochs": 2})
