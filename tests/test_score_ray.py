"""`vad score --out DIR --backend ray` on a local 2-CPU Ray instance: the same curves, records and
summary as the local path, a broken video is one failure line, both actors killed mid-run cost
nothing, and a rerun skips what is done.

The model is test_watch's cheap one: an untrained detector on i3d-r50 features of one crop at
short side 128, crop 112, with the generated r50 weights; the clips are 16 to 33 lossless frames.
"""
from __future__ import annotations

import csv
import functools
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from vad.pipeline.cli import main
from vad.pipeline.score_state import STATE_DIR

from cheap_model import write_cheap_r50_model
from videos import pattern_frames, write_lossless

FRAMES = {"cam0/a": 16, "cam0/b": 33, "cam1/c": 20}  # 1..3 snippets, partial last snippets included


@pytest.fixture(scope="module")
def model(tmp_path_factory, r50_weights_path) -> Path:
    return write_cheap_r50_model(tmp_path_factory.mktemp("model") / "ray.pt", r50_weights_path)


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("archive")
    for i, (video_id, n) in enumerate(FRAMES.items()):
        write_lossless(folder / f"{video_id}.mp4", pattern_frames(n, seed=i), fps=25)
    (folder / "cam1" / "broken.mp4").write_bytes(b"not a video at all" * 10)
    return folder


def run_score(archive: Path, out: Path, model: Path, weights: Path, *extra: str):
    return CliRunner().invoke(main, ["score", str(archive), "--out", str(out), "--format", "json", "--model", str(model),
                                     "--weights", str(weights), "--device", "cpu", "--decoder", "pyav", "-q", *extra])


def summary_of(result) -> dict:
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_ray_backend_scores_like_local_through_killed_workers(tmp_path, ray_instance, archive, model, r50_weights_path, monkeypatch):
    import vad.pipeline.score_ray as score_ray_module

    ray = ray_instance
    local = run_score(archive, tmp_path / "local", model, r50_weights_path)
    assert local.exit_code == 1, local.output
    assert (summary_of(local)["scored"], summary_of(local)["failed"]) == (3, 1)

    kills = []

    def kill_every_actor_once(video_id, actors):
        # After the first video came back the other actor is mid-video: kill both (Ray restarts them).
        if not kills:
            for actor in actors:
                ray.kill(actor, no_restart=False)
            kills.append(video_id)

    monkeypatch.setattr(score_ray_module, "score_ray", functools.partial(score_ray_module.score_ray, on_result=kill_every_actor_once))
    out = tmp_path / "ray"
    result = run_score(archive, out, model, r50_weights_path, "--backend", "ray", "--ray-cpus", "1")
    assert kills, "the hook never ran"
    assert result.exit_code == 1, result.output
    summary = summary_of(result)
    assert (summary["scored"], summary["skipped"], summary["failed"]) == (3, 0, 1)
    failures = [line for line in result.stderr.splitlines() if line.startswith("vad: ") and "error" not in line.split(":")[1]]
    assert len(failures) == 1 and "broken.mp4" in failures[0] and "decode" in failures[0], result.stderr
    assert [f["video"] for f in summary["failures"]] == [str(archive / "cam1" / "broken.mp4")]

    for video_id, n in FRAMES.items():
        ours = json.loads((out / f"{video_id}.json").read_text())
        ref = json.loads((tmp_path / "local" / f"{video_id}.json").read_text())
        assert ours["n_frames"] == ref["n_frames"] == n and ours["fps"] == ref["fps"] and ours["partial"] is ref["partial"] is False
        assert ours["video"] == ref["video"] == str(archive / f"{video_id}.mp4")
        # Actors run 1 torch thread, the local run 2: oneDNN sums in another order.
        np.testing.assert_allclose(ours["scores"], ref["scores"], atol=1e-4)
        np.testing.assert_allclose(ours["snippet_scores"], ref["snippet_scores"], atol=1e-4)
        assert abs(ours["video_score"] - ref["video_score"]) <= 1e-4
        assert {k: v for k, v in ours.items() if k not in ("scores", "snippet_scores", "video_score", "max_score", "arithmetic")} == \
               {k: v for k, v in ref.items() if k not in ("scores", "snippet_scores", "video_score", "max_score", "arithmetic")}
        # the arithmetic is the actor's (1 thread, --ray-cpus 1), not the driver's
        assert ours["arithmetic"]["threads"] == 1 and ref["arithmetic"]["threads"] == torch.get_num_threads() > 1
        assert {k: v for k, v in ours["arithmetic"].items() if k != "threads"} == {k: v for k, v in ref["arithmetic"].items() if k != "threads"}
        record, ref_record = (json.loads((root / STATE_DIR / f"{video_id}.json").read_text()) for root in (out, tmp_path / "local"))
        assert record["outputs"] == [str(out / f"{video_id}.json")]
        assert record["source"] == ref_record["source"] and record["settings"] == ref_record["settings"]
        np.testing.assert_allclose(record["curve"]["snippet_scores"], ref_record["curve"]["snippet_scores"], atol=1e-4)
    leftovers = sorted(p.name for p in out.rglob("*") if p.is_file() and (p.suffix not in (".json", ".csv", ".html") or ".tmp" in p.name))
    assert leftovers == [], "temporary or claim files left behind"
    with open(out / "summary.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    with open(tmp_path / "local" / "summary.csv", newline="") as handle:
        ref_rows = list(csv.DictReader(handle))
    assert sorted(row["id"] for row in rows) == sorted(row["id"] for row in ref_rows) == sorted([*FRAMES, "cam1/broken"])

    # A rerun skips the finished videos (their records match); with the broken video gone nothing is left to score.
    (archive / "cam1" / "broken.mp4").unlink()
    again = run_score(archive, out, model, r50_weights_path, "--backend", "ray")
    assert again.exit_code == 0, again.output
    assert (summary_of(again)["scored"], summary_of(again)["skipped"], summary_of(again)["failed"]) == (0, 3, 0)
    assert sorted(row["id"] for row in csv.DictReader(open(out / "summary.csv", newline=""))) == sorted(FRAMES)


def test_ray_backend_needs_out_and_ray_options_need_it(tmp_path, archive, model):
    video = archive / "cam0" / "a.mp4"
    result = CliRunner().invoke(main, ["score", str(video), "--model", str(model), "--backend", "ray"])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == ["vad: error: --backend ray scores raw videos into a folder: pass --out DIR (and no --cache)"]
    result = CliRunner().invoke(main, ["score", str(video), "--model", str(model), "--out", str(tmp_path / "o"), "--ray-actors", "2"])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == ["vad: error: --ray-address/--ray-actors need --backend ray"]
