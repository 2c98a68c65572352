"""SIGKILL in the middle of `vad extract` and `vad train`, then resume.

The kill points are exact: a small driver patches one function of the real pipeline to SIGKILL
its own process at that moment (mid-video, mid-write of a feature file, between the feature
file and its metadata; mid-iteration of training).
"""
from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from vad.extract.cache import FeatureCache
from vad.pipeline.cli import main
from vad.tables import write_labels

from videos import pattern_frames, write_lossless

DRIVER = """
import os, signal, sys
import numpy as np
import vad.extract.cache as cache
import vad.extract.snippets as snippets
point, args = sys.argv[1], sys.argv[2:]
calls = {"n": 0}

def die():
    os.kill(os.getpid(), signal.SIGKILL)

if point == "mid-video":  # 15th frame = the middle of the second video
    resize = snippets.resize_frame
    def resize_frame(*a, **k):
        calls["n"] += 1
        if calls["n"] == 15:
            die()
        return resize(*a, **k)
    snippets.resize_frame = resize_frame
elif point == "mid-write":  # half of the second feature file is on disk
    save = np.save
    def half_save(handle, array, **k):
        calls["n"] += 1
        if calls["n"] == 2:
            handle.write(b"\\x93NUMPY" + bytes(64)); handle.flush(); die()
        return save(handle, array, **k)
    np.save = half_save
elif point == "between-files":  # second video: features in place, metadata not yet
    write_json = cache.atomic_write_json
    def atomic_write_json(path, obj):
        if path.suffix == ".json" and path.parent.name == "features":
            calls["n"] += 1
            if calls["n"] == 2:
                die()
        return write_json(path, obj)
    cache.atomic_write_json = atomic_write_json
elif point == "mid-iteration":  # first optimiser step of the second self-training iteration
    import torch
    import vad.models.trainer as trainer
    fit = trainer._fit
    def second_fit(*a, **k):
        calls["n"] += 1
        if calls["n"] == 2:
            step = torch.optim.Adam.step
            def step_then_die(self, *sa, **sk):
                step(self, *sa, **sk); die()
            torch.optim.Adam.step = step_then_die
        return fit(*a, **k)
    trainer._fit = second_fit
from vad.pipeline.cli import main
main(args)
"""


def run_killed(point: str, *args) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-c", DRIVER, point, *map(str, args)], capture_output=True, text=True, timeout=300)
    assert done.returncode == -signal.SIGKILL, done.stderr
    return done


@pytest.fixture(scope="module")
def three_videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("three") / "videos"
    for i in range(3):
        write_lossless(root / f"v{i}.mp4", pattern_frames(10, 64, 48, seed=i))
    return root


@pytest.mark.parametrize("point", ["mid-video", "mid-write", "between-files"])
def test_extract_killed_then_resumed(tmp_path, three_videos, r50_weights_path, point):
    cache_dir = tmp_path / "cache"
    # Batches run across video ends, so with 2 a batch v0 would wait for v1's snippet; with 1 each
    # one-snippet video is written as soon as it is decoded, which is what the kill points need.
    args = ["extract", three_videos, "--cache", cache_dir, "--weights", r50_weights_path, "--crops", 1, "--profile", "direct",
            "--device", "cpu", "--batch-size", 1, "-q"]
    run_killed(point, *args)
    cache = FeatureCache(cache_dir)
    assert cache.video_ids() == ["v0"]  # the finished video only: nothing looks complete that is not
    assert cache.entry_problem("v0") is None
    finished = cache.load("v0").copy()
    assert (cache_dir / "features/v1.lock").is_file()  # the dead run's claim is left behind...
    resumed = CliRunner().invoke(main, [str(a) for a in args])
    assert resumed.exit_code == 0, resumed.output
    summary = json.loads(resumed.stdout)
    assert (summary["skipped"], summary["extracted"], summary["claimed"]) == (1, 2, 0)  # ...and taken over
    assert cache.video_ids() == ["v0", "v1", "v2"] and np.array_equal(cache.load("v0"), finished)
    assert all(cache.entry_problem(v) is None for v in cache.video_ids())
    assert sorted(p.name for p in (cache_dir / "features").iterdir()) == sorted(f"v{i}.{e}" for i in range(3) for e in ("npy", "json"))


def tiny_training_set(root: Path) -> tuple[Path, Path]:
    cache = FeatureCache(root / "cache")
    cache.ensure_config({"backbone": "synthetic", "feature_dim": 8, "crops": 1, "clip_len": 16})
    rng = np.random.default_rng(0)
    labels = {}
    for i in range(8):
        features = rng.normal(size=(int(rng.integers(20, 40)), 1, 8)).astype(np.float32)
        if i % 2:
            features[5:12] += 2.0
        cache.write(f"v{i}", features, {"n_frames": 16 * len(features)})
        labels[f"v{i}"] = i % 2
    write_labels(root / "labels.csv", labels)
    return root / "cache", root / "labels.csv"


def test_train_killed_mid_iteration_resumes_to_the_same_model(tmp_path):
    cache_dir, labels = tiny_training_set(tmp_path)
    args = ["train", "--cache", cache_dir, "--labels", labels, "--epochs", 2, "--min-steps", 0, "--batch-videos", 2, "--iterations", 3,
            "--hidden-dim", 16, "--lr", 1e-3, "--device", "cpu", "-q", "--out"]
    straight = CliRunner().invoke(main, [str(a) for a in [*args, tmp_path / "straight"]])
    assert straight.exit_code == 0, straight.output
    run_killed("mid-iteration", *args, tmp_path / "killed")
    killed = tmp_path / "killed"
    assert [m["iteration"] for m in json.loads((killed / "metrics.json").read_text())["iterations"]] == [1]
    assert not (killed / "model.pt").exists() and not (killed / "iter_2.pt").exists()
    resumed = CliRunner().invoke(main, [str(a) for a in [*args, killed, "--resume"]])
    assert resumed.exit_code == 0, resumed.output
    assert json.loads(resumed.stdout)["iterations"] == 3
    a = torch.load(tmp_path / "straight/model.pt", weights_only=True)["state_dict"]
    b = torch.load(killed / "model.pt", weights_only=True)["state_dict"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    history = json.loads((killed / "metrics.json").read_text())["iterations"]
    reference = json.loads((tmp_path / "straight/metrics.json").read_text())["iterations"]
    assert [m["loss"] for m in history] == [m["loss"] for m in reference]
