"""Throughput plumbing: default decode workers, the prefetch thread of Ray actors, decoder choice."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from videos import pattern_frames, write_lossless

from vad.extract import runner
from vad.extract.decode import open_video, read_all_frames


def test_default_workers_cpu_none_gpu_all_cores_but_one(monkeypatch):
    assert runner.default_workers(torch.device("cpu"), 100) == 0
    monkeypatch.setattr(runner.os, "cpu_count", lambda: 16)
    assert runner.default_workers(torch.device("cuda"), 100) == 15
    assert runner.default_workers(torch.device("cuda"), 3) == 3  # never more workers than videos
    monkeypatch.setattr(runner.os, "cpu_count", lambda: 64)
    assert runner.default_workers(torch.device("cuda"), 100) == runner.MAX_WORKERS
    monkeypatch.setattr(runner.os, "cpu_count", lambda: 1)
    assert runner.default_workers(torch.device("cuda"), 100) == 1


def test_prefetch_keeps_order_and_raises_the_producers_error():
    ray_backend = pytest.importorskip("vad.extract.ray_backend")

    def items():
        yield from range(10)
        raise RuntimeError("decoder broke")

    seen = []
    with pytest.raises(RuntimeError, match="decoder broke"):
        for value in ray_backend.prefetch(items(), depth=2):
            seen.append(value)
    assert seen == list(range(10))
    assert list(ray_backend.prefetch(iter(range(5)))) == [0, 1, 2, 3, 4]


def test_auto_decodes_with_pyav_and_the_same_pixels(tmp_path):
    frames = pattern_frames(20, seed=5)
    path = write_lossless(tmp_path / "clip.mp4", frames)
    assert open_video(path, "auto").decoder == "pyav"
    decoded, _ = read_all_frames(path, "auto")
    assert np.array_equal(decoded, frames)
