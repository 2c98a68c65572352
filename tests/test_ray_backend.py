"""`vad extract --backend ray` on a local 2-CPU Ray instance: same features as the local backend,
a worker killed mid-run costs nothing, the cache stays complete and uncorrupted, and a missing
Ray install is one clear line with exit 2."""
from __future__ import annotations

import json
import sys
import time

import numpy as np
import pytest
from click.testing import CliRunner

from vad.extract.cache import FeatureCache
from vad.extract.inputs import discover
from vad.extract.preprocess import Geometry
from vad.extract.runner import ExtractConfig, run_extraction
from vad.pipeline.cli import main

from videos import pattern_frames, write_lossless

# Tiny crops keep the real i3d-r50 cheap: 24x24 still passes every stride (down to 1x1 in layer4).
SMALL = Geometry(clip_len=16, short_side=32, crop_size=24)
FRAMES = (16, 40, 23, 33, 17, 48)  # 1..3 snippets, partial last snippets included


def test_missing_ray_is_one_line_and_exit_2(tmp_path, monkeypatch, r50_weights_path):
    video = write_lossless(tmp_path / "v.mp4", pattern_frames(16))
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    result = CliRunner().invoke(main, ["extract", str(video), "--cache", str(tmp_path / "c"), "--backend", "ray",
                                       "--weights", str(r50_weights_path), "-q"])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        "vad: error: --backend ray needs the optional Ray package: pip install 'vad[ray]' (or: pip install 'ray[default]>=2.30')"]


def test_ray_address_without_ray_backend_is_refused(tmp_path):
    video = write_lossless(tmp_path / "v.mp4", pattern_frames(16))
    result = CliRunner().invoke(main, ["extract", str(video), "--ray-address", "auto"])
    assert result.exit_code == 2
    assert "--ray-address/--ray-actors need --backend ray" in result.stderr


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("videos")
    for i, n in enumerate(FRAMES):
        write_lossless(folder / f"cam{i}.mp4", pattern_frames(n, seed=i))
    return folder


def test_killed_worker_run_finishes_with_a_complete_identical_cache(tmp_path, ray_instance, videos, r50_weights_path):
    from vad.extract.ray_backend import RayOptions, extract_ray

    ray = ray_instance
    items = discover([str(videos)])
    config = ExtractConfig(weights=r50_weights_path, crops=10, device="cpu", batch_size=2, workers=0, geometry=SMALL)
    local = run_extraction(items, tmp_path / "local", config, progress=False)
    assert len(local.extracted) == len(FRAMES)

    kills = []

    def kill_every_actor_once(video_id, actors):
        # After the first finished video the other actor is mid-video: kill both (Ray may restart them).
        if not kills:
            for actor in actors:
                ray.kill(actor, no_restart=False)
            kills.append(video_id)

    started = time.perf_counter()
    report = extract_ray(items, tmp_path / "ray", config, RayOptions(cpus_per_actor=1), progress=False,
                         on_result=kill_every_actor_once)
    assert kills, "the hook never ran"
    assert report.failed == [] and sorted(report.extracted) == sorted(local.extracted)
    assert report.snippets == local.snippets == sum(-(-n // 16) for n in FRAMES)

    cache, reference = FeatureCache(tmp_path / "ray"), FeatureCache(tmp_path / "local")
    assert cache.config == reference.config
    assert cache.video_ids() == reference.video_ids()
    for video_id in cache.video_ids():
        assert cache.entry_problem(video_id) is None
        ours, ref = cache.load(video_id), reference.load(video_id)
        # Actors run 1 torch thread, the local run 2: oneDNN sums in another order (~2e-5 x max|ref|).
        assert np.abs(ours - ref).max() <= 1e-4 * np.abs(ref).max()
        assert cache.meta(video_id)["n_frames"] == reference.meta(video_id)["n_frames"]
    leftovers = [p.name for p in (tmp_path / "ray" / "features").iterdir() if p.suffix not in (".npy", ".json")]
    assert leftovers == [], "temporary or claim files left behind"
    assert not cache.failures_path.exists()

    # Resumable like the local backend: a second run skips everything.
    again = extract_ray(items, tmp_path / "ray", config, RayOptions(), progress=False)
    assert again.extracted == [] and sorted(again.skipped) == sorted(local.extracted)
    assert time.perf_counter() - started < 600  # a hang guard (a lost actor that is never replaced), not a speed target


def test_cli_ray_backend_records_a_broken_video(tmp_path, ray_instance, r50_weights_path):
    folder = tmp_path / "in"
    write_lossless(folder / "good.mp4", pattern_frames(16))
    (folder / "broken.mp4").write_bytes(b"not a video at all" * 10)
    result = CliRunner().invoke(main, ["extract", str(folder), "--cache", str(tmp_path / "c"), "--backend", "ray",
                                       "--crops", "1", "--weights", str(r50_weights_path), "--device", "cpu", "-q"])
    assert result.exit_code == 1, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert (summary["extracted"], summary["failed"], summary["snippets"]) == (1, 1, 1)
    cache = FeatureCache(tmp_path / "c")
    assert cache.video_ids() == ["good"]
    assert cache.load("good").shape == (1, 1, 2048)
    assert [f["video_id"] for f in cache.failures()] == ["broken"]
    assert "broken.mp4: cannot decode" in cache.failures()[0]["error"]
