"""`vad score INPUT... --out DIR` on an archive: ids from folders and @lists, resuming, claims, shards.

The model is test_score's untrained detector on i3d-r50 features (one crop, direct profile);
the videos are 16 lossless frames each (one snippet), so a scoring costs about a second.
"""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from test_score import make_model

from vad.claims import claim, process_identity
from vad.extract.backbones import get_backbone
from vad.extract.inputs import in_shard
from vad.extract.runner import ExtractConfig, cache_config
from vad.models.detector import build_detector
from vad.models.io import save_model
from vad.pipeline.cli import main
from vad.pipeline.score_state import STATE_DIR
from vad.weights import sha256_file

from videos import pattern_frames, write_lossless

IDS = ["cam1/0800", "north/0800"]  # shard 0 and shard 1 of 2


@pytest.fixture(scope="module")
def model(tmp_path_factory, r50_weights_path) -> Path:
    return make_model(tmp_path_factory.mktemp("model") / "r50.pt", "i3d-r50", sha256_file(r50_weights_path))


def other_model(path: Path, weights_sha256: str) -> Path:
    """As make_model, with other detector weights: another file (sha256) for the same features."""
    spec = get_backbone("i3d-r50")
    torch.manual_seed(1)
    detector = build_detector(feature_dim=spec.feature_dim, hidden_dim=64, fc_dim=8)
    save_model(path, detector, feature=cache_config(spec, ExtractConfig(backbone="i3d-r50", crops=1, profile="direct"), weights_sha256),
               phase="untrained")
    return path


@pytest.fixture
def archive(tmp_path) -> Path:
    """cam1/0800.mp4 and north/0800.mp4: two videos with one stem."""
    for seed, video_id in enumerate(IDS):
        (tmp_path / "archive" / video_id).parent.mkdir(parents=True, exist_ok=True)
        write_lossless(tmp_path / "archive" / f"{video_id}.mp4", pattern_frames(16, seed=seed), fps=25)
    return tmp_path / "archive"


def score(model, weights, *args) -> dict:
    result = CliRunner().invoke(main, ["score", *map(str, args), "--model", str(model), "--weights", str(weights), "--device", "cpu", "-q"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout.strip().splitlines()[-1])


def mtimes(out: Path) -> dict[str, int]:
    """Each video's outputs and records (summary.csv and events.csv cover the run, so every run writes them)."""
    return {str(path.relative_to(out)): path.stat().st_mtime_ns for path in sorted(out.rglob("*"))
            if path.is_file() and path.parent != out and not path.name.endswith(".mutex")}


def counts(summary: dict) -> tuple[int, int, int, int]:
    return summary["scored"], summary["skipped"], summary["failed"], summary["claimed"]


def test_archive_ids_shards_resume_and_overwrite(archive, tmp_path, model, r50_weights_path):
    out = tmp_path / "out"
    # two shards split the videos disjointly; together they score each once
    shard0 = score(model, r50_weights_path, archive, "--out", out, "--shard", "0/2")
    shard1 = score(model, r50_weights_path, archive, "--out", out, "--shard", "1/2")
    expected0 = sum(in_shard(video_id, (0, 2)) for video_id in IDS)
    assert expected0 == 1  # one video per shard
    assert counts(shard0) == (expected0, 0, 0, 0) and counts(shard1) == (len(IDS) - expected0, 0, 0, 0)
    names = lambda summary: {Path(f["scores"]).relative_to(out).with_suffix("").as_posix() for f in summary["files"]}  # noqa: E731
    assert names(shard0).isdisjoint(names(shard1)) and names(shard0) | names(shard1) == set(IDS)
    with open(out / "summary.csv", newline="") as handle:  # the last shard's archive summary lists the other shard's videos too
        assert sorted(row["id"] for row in csv.DictReader(handle)) == IDS
    for video_id in IDS:  # the colliding stems 0800 get their own files, each recorded as made from its own video
        assert (out / f"{video_id}.csv").read_text().startswith("frame,time_s,score\n")
        record = json.loads((out / STATE_DIR / f"{video_id}.json").read_text())
        assert record["video"] == str(archive / f"{video_id}.mp4") and record["outputs"] == [str(out / f"{video_id}.csv")]

    # a rerun skips everything and rewrites nothing
    before = mtimes(out)
    assert counts(score(model, r50_weights_path, archive, "--out", out)) == (0, 2, 0, 0)
    assert mtimes(out) == before
    with open(out / "summary.csv", newline="") as handle:  # the archive summary still lists the skipped videos, from their records
        assert sorted((row["id"], row["status"], row["n_frames"]) for row in csv.DictReader(handle)) == [(i, "ok", "16") for i in IDS]

    # a touched source is scored again, alone
    os.utime(archive / "north/0800.mp4", ns=(before["north/0800.csv"] + 10**9,) * 2)
    touched = score(model, r50_weights_path, archive, "--out", out)
    assert counts(touched) == (1, 1, 0, 0) and [f["video"] for f in touched["files"]] == [str(archive / "north/0800.mp4")]
    after = mtimes(out)
    assert after["north/0800.csv"] > before["north/0800.csv"] and after["cam1/0800.csv"] == before["cam1/0800.csv"]

    # a missing output is made again, with --overwrite everything is
    (out / "cam1/0800.csv").unlink()
    assert counts(score(model, r50_weights_path, archive, "--out", out, "--overwrite")) == (2, 0, 0, 0)
    assert (out / "cam1/0800.csv").is_file() and mtimes(out)["north/0800.csv"] > after["north/0800.csv"]
    # another model file redoes all
    second = other_model(tmp_path / "other.pt", sha256_file(r50_weights_path))
    assert counts(score(second, r50_weights_path, archive, "--out", out)) == (2, 0, 0, 0)
    record = json.loads((out / STATE_DIR / "cam1/0800.json").read_text())
    assert record["model_sha256"] == sha256_file(second) and record["source"]["size"] == (archive / "cam1/0800.mp4").stat().st_size


def test_list_file_and_a_held_claim(archive, tmp_path, model, r50_weights_path):
    listing = tmp_path / "videos.txt"
    listing.write_text(f"# a folder gives ids relative to it\n{archive}\n")
    out = tmp_path / "out"
    # another live process holds cam1/0800 (this test's own identity is alive): the run leaves it alone
    assert claim(out / STATE_DIR / "cam1/0800.lock", process_identity(), out / STATE_DIR / ".claims.mutex") is None
    summary = score(model, r50_weights_path, f"@{listing}", "--out", out, "--format", "json")
    assert counts(summary) == (1, 0, 0, 1)
    assert (out / "north/0800.json").is_file() and not (out / "cam1/0800.json").exists()
    assert json.loads((out / "north/0800.json").read_text())["video"] == str(archive / "north/0800.mp4")
    # once released, a second run scores what is left and skips what is done
    (out / STATE_DIR / "cam1/0800.lock").unlink()
    assert counts(score(model, r50_weights_path, f"@{listing}", "--out", out, "--format", "json")) == (1, 1, 0, 0)
    assert not list((out / STATE_DIR).rglob("*.lock"))


def test_files_given_directly_keep_their_stems(archive, tmp_path):
    """A file keeps its stem as id, so two files with one stem are refused before any work; their folder is not."""
    listing = tmp_path / "videos.txt"
    listing.write_text(f"{archive / 'cam1/0800.mp4'}\n{archive / 'north'}\n")
    for inputs in ([archive / "cam1/0800.mp4", archive / "north/0800.mp4"], [f"@{listing}"]):
        result = CliRunner().invoke(main, ["score", *map(str, inputs), "--out", str(tmp_path / "out")])
        assert result.exit_code == 2 and "two videos would get the id '0800'" in result.stderr, result.output


def test_two_concurrent_runs_score_each_video_once(archive, tmp_path, model, r50_weights_path):
    """Two processes on one OUT at once: every video is scored by one of them; the other skips or leaves it."""
    out = tmp_path / "out"
    command = [str(Path(sys.executable).with_name("vad")), "score", str(archive), "--out", str(out), "--model", str(model),
               "--weights", str(r50_weights_path), "--device", "cpu", "-q"]
    runs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    summaries = []
    for run in runs:
        stdout, stderr = run.communicate(timeout=300)
        assert run.returncode == 0, stderr
        summaries.append(json.loads(stdout.strip().splitlines()[-1]))
    scored = [f["video"] for summary in summaries for f in summary["files"]]
    assert sorted(scored) == [str(archive / f"{video_id}.mp4") for video_id in IDS]  # each once
    assert all(summary["failed"] == 0 and summary["scored"] + summary["skipped"] + summary["claimed"] == len(IDS) for summary in summaries)
    assert not list((out / STATE_DIR).rglob("*.lock"))
