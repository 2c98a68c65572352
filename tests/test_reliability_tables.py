"""Bad tables: labels and GT files, corrupt cache entries, model files for other features.

Each is detected with one line naming the file (and line), and a corrupt cache entry is
extracted again rather than used.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from vad.extract.cache import CacheError, FeatureCache
from vad.models.detector import ARMSDetector, DetectorConfig
from vad.models.io import save_model
from vad.pipeline.cli import main
from vad.tables import TableError, read_gt, read_labels, write_gt, write_labels

from videos import pattern_frames, write_lossless

KNOWN = ["a", "b", "c"]


def vad(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.mark.parametrize("text,message", [
    ("video,label\na,1\nzzz,0\n", "labels.csv:3: unknown video 'zzz' (not in the feature cache)"),
    ("video,label\na,1\nb,0\na,0\n", "labels.csv:4: duplicate video 'a'"),
    ("a,1\nb,0\n", "labels.csv:1: expected the header 'video,label', got 'a,1'"),
    ("video,label\na,2\n", "labels.csv:2: label '2' of 'a' is not 0, 1, normal or abnormal"),
    ("video,label\na,yes\n", "labels.csv:2: label 'yes' of 'a' is not 0, 1, normal or abnormal"),
    ("video,label\na,1,extra\n", "labels.csv:2: expected 2 fields (video,label), got 3"),
    ("", "labels.csv:1: expected the header 'video,label', got 'an empty file'"),
    ("video,label\n", "labels.csv: no videos listed"),
])
def test_bad_labels(tmp_path, text, message):
    (tmp_path / "labels.csv").write_text(text)
    with pytest.raises(TableError) as error:
        read_labels(tmp_path / "labels.csv", KNOWN)
    assert str(error.value) == f"{tmp_path}/{message}"


def test_binary_labels_file(tmp_path):
    (tmp_path / "labels.csv").write_bytes(b"\xff\xfe\x00\x01garbage")
    with pytest.raises(TableError, match="not a text CSV file"):
        read_labels(tmp_path / "labels.csv")


@pytest.mark.parametrize("text,message", [
    ("video,start_frame,end_frame\na,50,10\n", "gt.csv:2: interval [50, 10) of 'a' is empty or reversed (end is exclusive)"),
    ("video,start_frame,end_frame\na,10,10\n", "gt.csv:2: interval [10, 10) of 'a' is empty or reversed (end is exclusive)"),
    ("video,start_frame,end_frame\na,-5,10\n", "gt.csv:2: interval [-5, 10) of 'a' is empty or reversed (end is exclusive)"),
    ("video,start_frame,end_frame\na,10,101\n", "gt.csv:2: interval [10, 101) of 'a' ends after its 100 frames"),
    ("video,start_frame,end_frame\na,1.5,10\n", "gt.csv:2: frames must be integers, got '1.5', '10'"),
    ("video,start_frame,end_frame\nzzz,1,10\n", "gt.csv:2: unknown video 'zzz' (not in the feature cache)"),
    ("video,start_frame,end_frame\na,1,10\na,1,10\n", "gt.csv:3: duplicate interval [1, 10) of 'a'"),
    ("video,start,end\na,1,10\n", "gt.csv:1: expected the header 'video,start_frame,end_frame', got 'video,start,end'"),
])
def test_bad_gt(tmp_path, text, message):
    (tmp_path / "gt.csv").write_text(text)
    with pytest.raises(TableError) as error:
        read_gt(tmp_path / "gt.csv", KNOWN, {"a": 100, "b": 100, "c": 100})
    assert str(error.value) == f"{tmp_path}/{message}"


@pytest.fixture()
def tiny_cache(tmp_path):
    cache = FeatureCache(tmp_path / "cache")
    cache.ensure_config({"backbone": "i3d-r50", "feature_dim": 8, "crops": 1, "clip_len": 16})
    rng = np.random.default_rng(0)
    for i in range(4):
        cache.write(f"v{i}", rng.normal(size=(3, 1, 8)).astype(np.float32), {"n_frames": 40})
    write_labels(tmp_path / "labels.csv", {"v0": 0, "v1": 1, "v2": 0, "v3": 1})
    write_gt(tmp_path / "gt.csv", {"v1": [(0, 20)], "v3": [(16, 40)]})
    return cache


def test_bad_labels_through_the_cli_exit_2_one_line(tiny_cache, tmp_path):
    (tmp_path / "bad.csv").write_text("video,label\nv0,1\nv9,0\n")
    result = vad("train", "--cache", tiny_cache.root, "--labels", tmp_path / "bad.csv", "--out", tmp_path / "run", "--device", "cpu", "-q")
    assert result.exit_code == 2
    assert result.stderr.strip() == f"vad: error: {tmp_path}/bad.csv:3: unknown video 'v9' (not in the feature cache)"


@pytest.mark.parametrize("damage", ["truncated", "garbage", "pickled", "wrong_shape"])
def test_corrupt_features_detected_and_reported(tiny_cache, tmp_path, damage):
    path = tiny_cache.feature_path("v1")
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[:100])
    elif damage == "garbage":
        path.write_bytes(b"\x93NUMPY garbage" * 10)
    elif damage == "pickled":  # an object array: loading it would unpickle
        np.save(path, np.array([{"x": 1}], dtype=object), allow_pickle=True)
    else:
        np.save(path, np.zeros((3, 8), np.float32))
    assert tiny_cache.entry_problem("v1") is not None and tiny_cache.entry_problem("v0") is None
    with pytest.raises(CacheError, match=r"v1\.npy: (corrupt feature file|expected float32 \[T, C, D\])"):
        tiny_cache.load("v1")
    result = vad("train", "--cache", tiny_cache.root, "--labels", tmp_path / "labels.csv", "--out", tmp_path / "run",
                 "--device", "cpu", "--epochs", 1, "--min-steps", 0, "--phases", "bst", "--iterations", 1, "--hidden-dim", 16, "-q")
    assert result.exit_code in (1, 2) and "v1.npy" in result.stderr.strip().splitlines()[-1]


def test_corrupt_entries_are_extracted_again(tmp_path, r50_weights_path):
    video = write_lossless(tmp_path / "videos/clip.mp4", pattern_frames(10, 64, 48))
    common = [tmp_path / "videos", "--cache", tmp_path / "cache", "--weights", r50_weights_path, "--crops", 1, "--device", "cpu", "-q"]
    first = vad("extract", *common)
    assert first.exit_code == 0, first.output
    cache = FeatureCache(tmp_path / "cache")
    good = cache.load("clip").copy()
    cache.feature_path("clip").write_bytes(b"not an npy")
    second = vad("extract", *common)
    assert second.exit_code == 0 and json.loads(second.stdout)["extracted"] == 1
    assert "clip: corrupt cache entry, extracting it again" in second.stderr
    assert np.array_equal(cache.load("clip"), good)
    cache.meta_path("clip").write_text("{ truncated")
    third = vad("extract", *common)
    assert third.exit_code == 0 and json.loads(third.stdout)["extracted"] == 1
    assert "corrupt metadata" in third.stderr and cache.meta("clip")["n_frames"] == 10
    assert video.is_file()


def model_for(path, dim, backbone):
    model = ARMSDetector(DetectorConfig(feature_dim=dim, hidden_dim=16))
    save_model(path, model, feature={"backbone": backbone, "feature_dim": dim, "crops": 1, "clip_len": 16})
    return path


def test_model_for_another_feature_dimension_or_backbone(tiny_cache, tmp_path):
    common = ["--cache", tiny_cache.root, "--labels", tmp_path / "labels.csv", "--gt", tmp_path / "gt.csv", "--device", "cpu", "-q"]
    ok = vad("eval", "--model", model_for(tmp_path / "ok.pt", 8, "i3d-r50"), *common, "--json")
    assert ok.exit_code == 0, ok.output
    wide = vad("eval", "--model", model_for(tmp_path / "wide.pt", 1024, "i3d-inception"), *common)
    assert wide.exit_code == 2
    assert wide.stderr.strip() == f"vad: error: --model {tmp_path}/wide.pt expects 1024-d features, the cache {tiny_cache.root} holds 8-d"
    other = vad("eval", "--model", model_for(tmp_path / "other.pt", 8, "i3d-inception"), *common)
    assert other.exit_code == 2
    assert other.stderr.strip() == (f"vad: error: --model {tmp_path}/other.pt was trained on i3d-inception features, "
                                    f"the cache {tiny_cache.root} holds i3d-r50 features")
