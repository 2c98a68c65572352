"""`vad extract` end to end: golden features, resume, failures, configuration clashes, exit codes."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from vad.extract.cache import FeatureCache
from vad.pipeline.cli import main

from paths import GOLDEN_INC, GOLDEN_R50, VIDEOS
from videos import pattern_frames, write_lossless


def run_extract(*args):
    result = CliRunner().invoke(main, ["extract", *map(str, args)])
    return result


def summary_of(result) -> dict:
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    "profile,golden,resize_on,network",
    [("reference", "clip40_feats.npy", "workers", "fast"), ("direct", "clip40_feats_nojpeg.npy", "workers", "exact"),
     ("reference", "clip40_feats.npy", "device", "fast")],
)
def test_clip40_reproduces_the_reference_extractor(tmp_path, r50_weights_path, profile, golden, resize_on, network):
    result = run_extract(GOLDEN_R50 / "clip40.mp4", "--cache", tmp_path / "c", "--weights", r50_weights_path, "--profile", profile,
                         "--resize-on", resize_on, "--device", "cpu", "--batch-size", "3", "-q", *(["--exact"] if network == "exact" else []))
    assert result.exit_code == 0, result.output
    cache = FeatureCache(tmp_path / "c")
    feats = cache.load("clip40")
    ref = np.load(GOLDEN_R50 / golden)
    assert feats.shape == ref.shape == (3, 10, 2048)
    assert np.abs(feats - ref).max() <= 1e-5 * np.abs(ref).max()
    meta = cache.meta("clip40")
    assert (meta["n_frames"], meta["n_snippets"], meta["fps"], meta["partial"]) == (40, 3, 25.0, False)
    assert (meta["network"], meta["precision"]) == (network, "fp32")
    assert cache.config["profile"] == profile and cache.config["feature_dim"] == 2048
    summary = summary_of(result)
    assert summary["snippets"] == 3 and 0 < summary["startup_s"] < summary["seconds"]
    assert summary["streaming_snippets_per_s"] >= summary["snippets_per_s"]  # model loading left out (equal once rounded on a slow machine)


def test_real_clips_snippet_counts_centre_crop(tmp_path, r50_weights_path):
    result = run_extract(VIDEOS, "--cache", tmp_path / "c", "--weights", r50_weights_path, "--crops", "1", "--profile", "direct", "--device", "cpu",
                         "--batch-size", "8", "-q")
    assert result.exit_code == 0, result.output
    cache = FeatureCache(tmp_path / "c")
    assert cache.video_ids() == ["bikes", "carphone_distorted", "carphone_pristine"]
    shapes = {v: cache.load(v).shape for v in cache.video_ids()}
    assert shapes == {"bikes": (16, 1, 2048), "carphone_distorted": (8, 1, 2048), "carphone_pristine": (8, 1, 2048)}
    assert np.isfinite(cache.load("bikes")).all()
    assert cache.meta("carphone_pristine")["fps"] == pytest.approx(29.97, abs=1e-3)


@pytest.fixture()
def small_videos(tmp_path):
    root = tmp_path / "videos"
    write_lossless(root / "a/clip.mp4", pattern_frames(20, seed=1))
    write_lossless(root / "b/clip.mp4", pattern_frames(12, seed=2))
    (root / "b/broken.mp4").write_text("not a video")
    return root


def test_batch_continues_past_a_broken_video_then_resumes(tmp_path, small_videos, r50_weights_path):
    cache_dir = tmp_path / "cache"
    common = ["--cache", cache_dir, "--weights", r50_weights_path, "--crops", "1", "--device", "cpu", "-q"]
    first = run_extract(small_videos, *common)
    assert first.exit_code == 1
    assert "1 of 3 video(s) failed" in first.stderr
    assert "broken.mp4" in first.stderr
    assert summary_of(first)["extracted"] == 2
    cache = FeatureCache(cache_dir)
    assert cache.video_ids() == ["a/clip", "b/clip"]
    assert [f["video_id"] for f in cache.failures()] == ["b/broken"]
    assert cache.load("a/clip").shape == (2, 1, 2048) and cache.load("b/clip").shape == (1, 1, 2048)
    before = cache.load("a/clip").copy()

    (small_videos / "b/broken.mp4").unlink()
    second = run_extract(small_videos, *common)
    assert second.exit_code == 0, second.output
    assert summary_of(second)["skipped"] == 2 and summary_of(second)["extracted"] == 0
    third = run_extract(small_videos, *common, "--overwrite")
    assert summary_of(third)["extracted"] == 2
    assert np.array_equal(cache.load("a/clip"), before)
    leftovers = [p for p in (cache_dir / "features").rglob("*") if p.name.startswith(".")]
    assert leftovers == []


def test_another_configuration_in_the_same_cache_is_a_usage_error(tmp_path, small_videos, r50_weights_path):
    (small_videos / "b/broken.mp4").unlink()
    cache_dir = tmp_path / "cache"
    ok = run_extract(small_videos / "a", "--cache", cache_dir, "--weights", r50_weights_path, "--crops", "1", "--device", "cpu", "-q")
    assert ok.exit_code == 0, ok.output
    clash = run_extract(small_videos / "a", "--cache", cache_dir, "--weights", r50_weights_path, "--crops", "10", "--device", "cpu", "-q")
    assert clash.exit_code == 2
    assert "another feature configuration" in clash.stderr and "crops: cache has 1, asked for 10" in clash.stderr


def test_usage_errors_exit_2_with_one_line(tmp_path, r50_weights_path):
    missing = run_extract(tmp_path / "nothing.mp4", "--cache", tmp_path / "c")
    assert missing.exit_code == 2 and "nothing.mp4: no such file" in missing.stderr
    unknown = run_extract(VIDEOS, "--backbone", "i3d-c3d", "--cache", tmp_path / "c")
    assert unknown.exit_code == 2 and "Invalid value for '--backbone': 'i3d-c3d' is not one of i3d-inception, i3d-r50" in unknown.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    none = run_extract(empty, "--cache", tmp_path / "c")
    assert none.exit_code == 2 and "no video files found" in none.stderr
    bad_shard = run_extract(VIDEOS, "--shard", "4/4", "--cache", tmp_path / "c")
    assert bad_shard.exit_code == 2 and "--shard" in bad_shard.stderr


def test_missing_weights_name_the_file_and_the_offline_alternative(tmp_path, monkeypatch):
    monkeypatch.setenv("VAD_WEIGHTS_DIR", str(tmp_path / "empty_weights"))
    import vad.weights as store

    monkeypatch.setattr(store, "WEIGHTS_DIR", tmp_path / "no_weights_here")
    result = run_extract(VIDEOS / "bikes.mp4", "--cache", tmp_path / "c", "--device", "cpu")
    assert result.exit_code == 2
    line = result.stderr.strip().splitlines()[-1]
    assert "i3d_r50_kinetics.pth" in line and "vad weights fetch i3d-r50" in line and "--backbone i3d-inception" in line


def test_shards_split_the_work_through_the_installed_entry_point(tmp_path, small_videos, r50_weights_path):
    (small_videos / "b/broken.mp4").unlink()
    vad = Path(sys.executable).with_name("vad")
    cache_dir = tmp_path / "cache"
    counts = []
    for shard in ("0/2", "1/2"):
        done = subprocess.run(
            [str(vad), "extract", str(small_videos), "--cache", str(cache_dir), "--weights", str(r50_weights_path),
             "--crops", "1", "--device", "cpu", "--shard", shard, "-q"],
            capture_output=True, text=True, check=True,
        )
        counts.append(json.loads(done.stdout)["extracted"])
    assert sum(counts) == 2
    assert FeatureCache(cache_dir).video_ids() == ["a/clip", "b/clip"]


def test_bikes_reproduces_the_original_inception_pipeline(tmp_path, inception_weights_path):
    """tests/data/golden/i3d-inception/pipeline-bikes: DeepMind's model fed by exactly our pipeline, 16 snippets x 10 crops."""
    result = run_extract(VIDEOS / "bikes.mp4", "--cache", tmp_path / "c", "--backbone", "i3d-inception", "--crops", "10", "--decoder", "pyav",
                         "--device", "cpu", "--batch-size", "2", "-q")
    assert result.exit_code == 0, result.output
    feats = FeatureCache(tmp_path / "c").load("bikes")
    ref = np.load(GOLDEN_INC / "pipeline-bikes/bikes_feats.npy")
    assert feats.shape == ref.shape == (16, 10, 1024)
    # the inference form (the default): 2.8e-6 of max|ref| on cpu2, the plain network (--exact) 2.6e-6
    assert np.abs(feats - ref).max() <= 1e-5 * np.abs(ref).max()
    assert FeatureCache(tmp_path / "c").config["feature_dim"] == 1024
