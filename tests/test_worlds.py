"""bench/worlds.py: determinism, shapes, GT consistency and the geometry the ablation relies on."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))

from vad.extract.cache import FeatureCache  # noqa: E402
from vad.tables import read_gt, read_labels  # noqa: E402

import worlds  # noqa: E402

SMALL = dict(feature_dim=48, crops=3, n_train=(6, 8), n_test=(4, 6), t_range=(20, 40))


def small(preset: str = "hard", **overrides) -> worlds.WorldConfig:
    return worlds.make_world_config(preset, **{**SMALL, **overrides})


def test_same_seed_same_world_other_seed_other_world():
    _, a = worlds.generate(small(), 3)
    _, b = worlds.generate(small(), 3)
    _, c = worlds.generate(small(), 4)
    for x, y in zip(a["train"] + a["test"], b["train"] + b["test"]):
        assert x.video_id == y.video_id and np.array_equal(x.features, y.features) and np.array_equal(x.kinds, y.kinds)
    assert not np.array_equal(a["train"][0].features[:5], c["train"][0].features[:5])


def test_shapes_labels_and_kinds():
    config = small()
    _, videos = worlds.generate(config, 0)
    train, test = videos["train"], videos["test"]
    assert [v.label for v in train] == [0] * 6 + [1] * 8 and [v.label for v in test] == [0] * 4 + [1] * 6
    for video in train + test:
        t = video.features.shape[0]
        assert video.features.shape == (t, 3, 48) and video.features.dtype == np.float32
        assert 20 <= t <= 40 and 16 * (t - 1) < video.n_frames <= 16 * t
        event = np.isin(video.kinds, (worlds.KIND_EASY, worlds.KIND_HARD))
        assert event.any() == bool(video.label)  # normal videos hold no event snippet
        if video.label:
            idx = np.flatnonzero(event)
            assert idx[-1] - idx[0] + 1 == idx.size  # one contiguous event
            assert (video.kinds == worlds.KIND_HARD).any()
    # crops of one snippet differ only by the small crop noise
    crops = train[0].features
    assert 0 < np.abs(crops[:, 0] - crops[:, 1]).std() < 0.5


def test_hard_only_share_and_unusual_rate_are_respected():
    config = small(n_train=(200, 200), hard_only_share=0.5, unusual_rate=0.5, t_range=(20, 24))
    _, videos = worlds.generate(config, 1)
    abnormal = [v for v in videos["train"] if v.label]
    hard_only = np.mean([not (v.kinds == worlds.KIND_EASY).any() for v in abnormal])
    unusual = np.mean([(v.kinds == worlds.KIND_UNUSUAL).any() for v in videos["train"] if not v.label])
    assert 0.4 < hard_only < 0.6 and 0.4 < unusual < 0.6


def test_hard_part_lives_in_other_directions_than_easy_part():
    config = small(n_train=(40, 80), crops=1, feature_dim=64)
    structure, videos = worlds.generate(config, 2)
    # By construction: each subspace orthogonal to the others.
    assert np.abs(structure.easy_dirs @ structure.hard_dirs.T).max() < 1e-9
    assert np.abs(structure.hard_dirs @ structure.unusual_dirs.T).max() < 1e-9
    assert np.abs(structure.easy_dirs @ structure.normal_basis.T).max() < 1e-9
    # In the data: what distinguishes hard snippets from normal ones is nearly orthogonal to
    # what distinguishes easy snippets, and hard signals are weaker than easy ones.
    x = np.concatenate([v.features[:, 0] for v in videos["train"]])
    k = np.concatenate([v.kinds for v in videos["train"]])
    normal = x[k == worlds.KIND_NORMAL].mean(0)
    for anomaly in range(config.n_types):
        easy_rows = [v.features[v.kinds == worlds.KIND_EASY, 0] for v in videos["train"] if v.info.get("type") == anomaly]
        hard_rows = [v.features[v.kinds == worlds.KIND_HARD, 0] for v in videos["train"] if v.info.get("type") == anomaly]
        easy = np.concatenate(easy_rows).mean(0) - normal
        hard = np.concatenate(hard_rows).mean(0) - normal
        cosine = easy @ hard / np.linalg.norm(easy) / np.linalg.norm(hard)
        assert abs(cosine) < 0.3, cosine
        assert np.linalg.norm(easy) > 1.5 * np.linalg.norm(hard)


def test_presets_change_what_they_say():
    base = worlds.make_world_config("hard")
    assert worlds.make_world_config("easy").hard_amp > base.hard_amp
    assert worlds.make_world_config("short").abnormal_ratio[1] < base.abnormal_ratio[0] + 0.1
    assert worlds.make_world_config("long").abnormal_ratio[0] >= 0.4
    with pytest.raises(ValueError, match="unknown world preset"):
        worlds.make_world_config("nope")
    with pytest.raises(ValueError, match="smaller than"):
        worlds.make_world_config("hard", feature_dim=8)


def test_written_world_round_trips_through_cache_and_csv(tmp_path):
    config = small()
    paths = worlds.write_world(tmp_path / "w", config, 5, "hard")
    cache = FeatureCache(paths.cache)
    assert cache.config["feature_dim"] == 48 and cache.config["crops"] == 3
    _, videos = worlds.generate(config, 5)
    for split in worlds.SPLITS:
        labels = read_labels(paths.labels(split), cache.video_ids())
        assert labels == {v.video_id: v.label for v in videos[split]}
        counts = {v.video_id: v.n_frames for v in videos[split]}
        gt = read_gt(paths.gt(split), cache.video_ids(), counts)
        for video in videos[split]:
            assert np.array_equal(cache.load(video.video_id), video.features)
            assert cache.meta(video.video_id)["n_frames"] == video.n_frames
            assert np.array_equal(worlds.snippet_kinds(cache, video.video_id), video.kinds)
            frames = np.zeros(video.n_frames, bool)
            for start, end in gt.get(video.video_id, []):
                frames[start:end] = True
            event = np.isin(video.kinds, (worlds.KIND_EASY, worlds.KIND_HARD))
            assert np.array_equal(frames, np.repeat(event, 16)[: video.n_frames])
    assert json.loads(paths.manifest.read_text())["seed"] == 5


def test_cli_writes_a_world(tmp_path):
    out = tmp_path / "cli"
    done = subprocess.run([sys.executable, str(BENCH / "worlds.py"), "--out", str(out), "--preset", "short", "--seed", "1",
                           "--dim", "40", "--train", "3,3", "--test", "2,2", "--t-range", "16,20"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["feature_dim"] == 40 and summary["preset"] == "short"
    assert len(FeatureCache(out / "cache").video_ids()) == 10
    bad = subprocess.run([sys.executable, str(BENCH / "worlds.py"), "--out", str(out), "--preset", "nope"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "invalid choice" in bad.stderr


def test_bursty_world_has_bursts_in_every_kind_of_video_and_a_non_negative_read_out():
    """The family of issue 25: 0-2 unusual bursts per video, weak lead-ins, 30% weak-only events, ReLU features."""
    preset = worlds.make_world_config("bursty")
    assert (preset.feature_dim, preset.n_train, preset.t_range, preset.hard_only_share) == (256, (160, 80), (40, 160), 0.3)
    config = small("bursty", n_train=(60, 60))
    assert config.rectify and config.unusual_count == (0, 2)
    _, videos = worlds.generate(config, 3)
    bursts = {label: [len(v.info.get("unusual", [])) for v in videos["train"] if v.label == label] for label in (0, 1)}
    assert set(bursts[0]) == set(bursts[1]) == {0, 1, 2}  # unusual-but-normal bursts in normal and abnormal videos alike
    features = np.concatenate([v.features.reshape(-1, config.feature_dim) for v in videos["train"]])
    assert features.min() == 0.0 and 0.3 < (features == 0).mean() < 0.7  # rectified
    abnormal = [v for v in videos["train"] if v.label]
    assert 0.15 < np.mean([not (v.kinds == worlds.KIND_EASY).any() for v in abnormal]) < 0.45
    for v in abnormal:  # the weak part leads in: it starts the event whenever there is one
        event = np.flatnonzero(np.isin(v.kinds, (worlds.KIND_EASY, worlds.KIND_HARD)))
        if (v.kinds == worlds.KIND_EASY).any() and (v.kinds[event] == worlds.KIND_HARD).any():
            assert v.kinds[event[0]] == worlds.KIND_HARD


@pytest.mark.parametrize("overrides, check", [
    ({"scale": 2.6}, lambda x, ref: np.allclose(x, 2 * ref, atol=1e-5)),  # the preset's scale is 1.3
    ({"offset": 5.0}, lambda x, ref: np.allclose(x, ref + 5.0, atol=1e-5)),
    ({"l2_rows": True}, lambda x, ref: np.allclose(np.linalg.norm(x, axis=-1), 1.0, atol=1e-5)),
])
def test_read_out_scales_offsets_and_normalises(overrides, check):
    _, plain = worlds.generate(small("bursty", n_train=(4, 4), n_test=(2, 2)), 5)
    _, changed = worlds.generate(small("bursty", n_train=(4, 4), n_test=(2, 2), **overrides), 5)
    assert all(check(a.features, b.features) for a, b in zip(changed["train"], plain["train"]))
    with pytest.raises(ValueError, match="scale"):
        small("bursty", scale=0.0)
