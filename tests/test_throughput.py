"""Throughput plumbing: default decode workers, decoder choice, GPU bench scripts (the read-ahead thread: test_decode.py)."""
from __future__ import annotations

import json
from datetime import datetime

import numpy as np
import torch

from vad.extract import engine, runner
from vad.extract.decode import open_video, read_all_frames

from videos import pattern_frames, write_lossless


def test_default_workers_cpu_none_gpu_all_cores_but_one(monkeypatch):
    assert runner.default_workers(torch.device("cpu"), 100) == 0
    monkeypatch.setattr(runner.os, "cpu_count", lambda: 16)
    assert runner.default_workers(torch.device("cuda"), 100) == 15
    assert runner.default_workers(torch.device("cuda"), 3) == 3  # never more workers than videos
    monkeypatch.setattr(runner.os, "cpu_count", lambda: 64)
    assert runner.default_workers(torch.device("cuda"), 100) == runner.MAX_WORKERS
    monkeypatch.setattr(runner.os, "cpu_count", lambda: 1)
    assert runner.default_workers(torch.device("cuda"), 100) == 1


def test_auto_decodes_with_pyav_and_the_same_pixels(tmp_path):
    frames = pattern_frames(20, seed=5)
    path = write_lossless(tmp_path / "clip.mp4", frames)
    assert open_video(path, "auto").decoder == "pyav"
    decoded, _ = read_all_frames(path, "auto")
    assert np.array_equal(decoded, frames)


def test_gpu_scripts_parse_and_the_summary_computes_tflops_and_utilisation(tmp_path):
    """bench/extract_gpu.sh has never run on a GPU here: at least its shell parses and its summary is right."""
    import subprocess
    import sys
    from pathlib import Path

    bench = Path(__file__).resolve().parents[1] / "bench"
    for script in ("extract_gpu.sh", "gpu_all.sh", "gpu_prepare.sh"):
        assert subprocess.run(["bash", "-n", str(bench / script)]).returncode == 0, script
    (tmp_path / "flops.json").write_text(json.dumps({"results": [{"backbone": "i3d-r50", "gflop_per_clip": 32.8291}]}))
    (tmp_path / "phases.tsv").write_text("extract_r50_ucf_c10_bf16_resize_workers\t100.0\t110.0\t0\nextract_r50_sh_c1_fp32\t110.0\t112.0\t1\n")
    (tmp_path / "extract_r50_ucf_c10_bf16_resize_workers.json").write_text(json.dumps({"snippets": 600, "snippets_per_s": 60.0}))
    stamp = lambda t: datetime.fromtimestamp(t).strftime("%Y/%m/%d %H:%M:%S.%f")[:-3]  # nvidia-smi's format
    (tmp_path / "smi.csv").write_text("".join(f"{stamp(t)}, {u}, 1000, 1980, 300\n" for t, u in [(99.0, 0), (101.0, 80), (105.0, 90), (111.0, 5)]))
    out = json.loads(subprocess.run([sys.executable, str(bench / "gpu_summary.py"), str(tmp_path)], capture_output=True, text=True, check=True).stdout)
    run = out["extract"][0]
    assert run["run"] == "r50_ucf_c10_bf16_resize_workers" and run["crops"] == 10 and run["precision"] == "bf16"
    assert run["tflops"] == round(60.0 * 10 * 32.8291 / 1e3, 2) == 19.7 and run["fraction_of_peak"] == round(19.7 / 989, 4)
    assert run["gpu_util_mean"] == 85.0  # only the samples inside the run's window
    assert out["failed_phases"] == ["extract_r50_sh_c1_fp32"]


def test_default_batch_is_4_snippets_on_cpu_and_64_clips_with_cuda():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert runner.ExtractConfig(crops=10).batch_snippets(cpu) == runner.ExtractConfig(crops=1).batch_snippets(cpu) == 4
    assert runner.ExtractConfig(crops=10).batch_snippets(cuda) == 6 and runner.ExtractConfig(crops=1).batch_snippets(cuda) == 64
    assert runner.ExtractConfig(crops=1, batch_size=3).batch_snippets(cuda) == 3


def test_batches_run_across_video_ends(tmp_path, monkeypatch, r50_weights_path):
    """Three one-snippet videos with batches of 2: two forward passes (2 + 1), not one per video."""
    from vad.extract.cache import FeatureCache
    from vad.extract.inputs import discover

    for i in range(3):
        write_lossless(tmp_path / "videos" / f"v{i}.mp4", pattern_frames(10, 64, 48, seed=i))
    sizes = []
    flush = engine.Engine.flush

    def counting(self):
        done = flush(self)
        if done:
            sizes.append(done)
        return done

    monkeypatch.setattr(engine.Engine, "flush", counting)
    config = runner.ExtractConfig(weights=r50_weights_path, crops=1, profile="direct", device="cpu", batch_size=2, workers=0)
    report = runner.run_extraction(discover([str(tmp_path / "videos")]), tmp_path / "cache", config, progress=False)
    assert sizes == [2, 1] and sorted(report.extracted) == ["v0", "v1", "v2"]
    cache = FeatureCache(tmp_path / "cache")
    assert [cache.load(v).shape for v in ("v0", "v1", "v2")] == [(1, 1, 2048)] * 3
