"""`vad score --cache CACHE [ID...]`: videos already in a feature cache scored without decoding.

The curves must be those of `vad score VIDEO` with the same backbone settings: the clips are
extracted by vad.extract_features (what `vad extract` runs) with the model's crops, profile,
geometry (small, as tests/test_watch.py's model) and the generated i3d-r50 weights, then scored
both ways. A cache of another configuration is refused naming both; an entry without fps fails
alone. These are the commands of docs/scoring.md (Scoring a feature cache), on a cache of two clips.
"""
from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from test_score import read_csv

import vad
from vad.extract.backbones import get_backbone
from vad.extract.preprocess import Geometry
from vad.extract.runner import ExtractConfig, cache_config
from vad.models.detector import build_detector
from vad.models.io import save_model
from vad.pipeline.cli import main
from vad.weights import sha256_file

from videos import pattern_frames, write_lossless

SMALL = {"short_side": 128, "crop_size": 112}


def small_model(path: Path, weights_sha256: str, **feature_changes) -> Path:
    spec = get_backbone("i3d-r50")
    torch.manual_seed(0)
    detector = build_detector(feature_dim=spec.feature_dim, hidden_dim=64, fc_dim=8, attention=False)
    with torch.no_grad():
        detector.fc2.weight.mul_(0.02)  # scores spread around 0.4 instead of saturating at 0 or 1
    feature = cache_config(spec, ExtractConfig(backbone="i3d-r50", crops=1, profile="direct"), weights_sha256)
    feature.update(SMALL, **feature_changes)
    save_model(path, detector, feature=feature, phase="untrained")
    return path


@pytest.fixture(scope="module")
def setup(tmp_path_factory, r50_weights_path):
    """Two clips (ids `clip`, 40 frames at 30 fps, and `sub/b`, 20 frames at 25 fps) in a cache of the model's settings."""
    root = tmp_path_factory.mktemp("score_cache")
    videos = root / "videos"
    write_lossless(videos / "clip.mp4", pattern_frames(40, seed=3), fps=30)
    write_lossless(videos / "sub" / "b.mp4", pattern_frames(20, seed=5), fps=25)
    model = small_model(root / "model.pt", sha256_file(r50_weights_path))
    cache = root / "cache"
    report = vad.extract_features(videos, cache, progress=False, backbone="i3d-r50", weights=r50_weights_path, crops=1,
                                  profile="direct", device="cpu", geometry=Geometry(**SMALL))
    assert len(report.extracted) == 2 and not report.failed
    return {"root": root, "videos": videos, "model": model, "cache": cache, "weights": r50_weights_path}


def run_score(*args):
    return CliRunner().invoke(main, ["score", *map(str, args)])


def test_cache_curves_equal_the_raw_videos(setup, tmp_path):
    common = ["--model", setup["model"], "--device", "cpu", "-q"]
    for video, video_id, n_frames, fps in [("clip.mp4", "clip", 40, 30.0), ("sub/b.mp4", "sub/b", 20, 25.0)]:
        direct = run_score(setup["videos"] / video, *common, "--weights", setup["weights"], "--format", "json")
        assert direct.exit_code == 0, direct.output
        cached = run_score("--cache", setup["cache"], video_id, *common, "--format", "json")
        assert cached.exit_code == 0, cached.output
        a, b = json.loads(direct.stdout), json.loads(cached.stdout)
        assert (b["n_frames"], b["fps"], b["partial"]) == (a["n_frames"], a["fps"], a["partial"]) == (n_frames, fps, False)
        assert (b["cache"], b["video_id"]) == (str(setup["cache"]), video_id)
        assert len(b["scores"]) == n_frames and len(b["snippet_scores"]) == -(-n_frames // 16)
        assert np.abs(np.array(a["scores"]) - np.array(b["scores"])).max() <= 1e-5
        assert np.abs(np.array(a["snippet_scores"]) - np.array(b["snippet_scores"])).max() <= 1e-5
        assert abs(a["video_score"] - b["video_score"]) <= 1e-5
        assert np.ptp(a["snippet_scores"]) > 1e-4  # the curve is not flat: a wrong snippet order or mapping would show
    # every entry, without ids: OUT/<id>.csv with the id's folders, the same rows as the video's CSV
    out = tmp_path / "scores"
    result = run_score("--cache", setup["cache"], *common, "--out", out)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["scored"], summary["failed"]) == (2, 0)
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.csv")) == ["clip.csv", "events.csv", "sub/b.csv", "summary.csv"]
    archive = list(csv.DictReader(io.StringIO((out / "summary.csv").read_text())))  # entries named by id, highest score first
    assert sorted(r["id"] for r in archive) == ["clip", "sub/b"] and float(archive[0]["video_score"]) >= float(archive[1]["video_score"])
    assert {r["id"]: r["n_frames"] for r in archive} == {"clip": "40", "sub/b": "20"} and {r["status"] for r in archive} == {"ok"}
    rows = read_csv((out / "sub" / "b.csv").read_text())  # a (sub/b.mp4's JSON, scored from the video) is still at hand
    assert [r["frame"] for r in rows] == list(range(20))
    assert np.allclose([r["time_s"] for r in rows], np.arange(20) / 25, atol=1e-6, rtol=0)
    assert np.abs(np.array([r["score"] for r in rows]) - np.array(a["scores"])).max() <= 1e-5


def test_another_configuration_is_refused_naming_both(setup, tmp_path):
    for changes, named in [({"short_side": 256, "crop_size": 224}, "short_side: model 256, cache 128; crop_size: model 224, cache 112"),
                           ({"crops": 10}, "crops: model 10, cache 1"), ({"profile": "reference"}, "profile: model 'reference', cache 'direct'")]:
        model = small_model(tmp_path / "other.pt", sha256_file(setup["weights"]), **changes)
        result = run_score("--cache", setup["cache"], "clip", "--model", model, "--device", "cpu")
        assert result.exit_code == 2, result.output
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and str(model) in lines[0] and str(setup["cache"]) in lines[0] and named in lines[0], lines
    model = small_model(tmp_path / "weights.pt", "ab" * 32)
    result = run_score("--cache", setup["cache"], "clip", "--model", model, "--device", "cpu")
    assert result.exit_code == 2 and "weights_sha256: model 'ababababab" not in result.output
    assert f"weights_sha256: model {'ab' * 6}..., cache {sha256_file(setup['weights'])[:12]}..." in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_entry_without_fps_fails_alone_and_bad_requests(setup, tmp_path):
    cache = tmp_path / "cache"
    shutil.copytree(setup["cache"], cache)
    meta_path = cache / "features" / "sub" / "b.json"
    meta = json.loads(meta_path.read_text())
    del meta["fps"]
    meta_path.write_text(json.dumps(meta))
    common = ["--model", setup["model"], "--device", "cpu"]
    out = tmp_path / "scores"
    result = run_score("--cache", cache, *common, "--out", out)
    assert result.exit_code == 1, result.output
    assert (out / "clip.csv").is_file() and not (out / "sub").exists()
    assert "'sub/b' records no frame rate" in result.output
    rows = {r["id"]: r["status"] for r in csv.DictReader(io.StringIO((out / "summary.csv").read_text()))}
    assert rows["clip"] == "ok" and rows["sub/b"].startswith("failed: ") and "no frame rate" in rows["sub/b"]
    one = run_score("--cache", cache, "sub/b", *common)
    assert one.exit_code == 1 and "frame,time_s" not in one.output
    for args, expected in [(["nope"], "no finished entry 'nope'"), (["clip", "sub/b"], "pass --out DIR"),
                           (["clip", "--plot", tmp_path / "p.png"], "--plot needs the video itself"),
                           (["../x"], "invalid video id")]:
        result = run_score("--cache", cache, *args, *common)
        assert result.exit_code == 2, (args, result.output)
        assert expected in result.output and len(result.output.strip().splitlines()) == 1, result.output
    result = run_score(*common)
    assert result.exit_code == 2 and "VIDEO" in result.output
