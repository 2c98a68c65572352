"""`vad score`: the frame-curve contract, outputs, plots, mismatch refusals and batches with failures.

The detector is an untrained ARMSDetector (seeded, hidden width 64) saved with models/io.py:
these tests check the plumbing and the contract (one row per decoded frame, times, correction,
refusals), which do not depend on training. Features come from the i3d-r50 architecture with
the golden generator's weights, centre crop, direct profile, to keep CPU time low.
"""
from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from vad.extract.backbones import get_backbone
from vad.extract.runner import ExtractConfig, cache_config
from vad.models.detector import build_detector
from vad.models.io import save_model
from vad.pipeline.cli import main
from vad.pipeline.plot import intervals_above
from vad.weights import sha256_file

from paths import VIDEOS
from videos import pattern_frames, write_lossless

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def make_model(path: Path, backbone: str, weights_sha256: str, feature_dim: int | None = None) -> Path:
    spec = get_backbone(backbone)
    torch.manual_seed(0)
    detector = build_detector(feature_dim=feature_dim or spec.feature_dim, hidden_dim=64, fc_dim=8)
    feature = cache_config(spec, ExtractConfig(backbone=backbone, crops=1, profile="direct"), weights_sha256)
    save_model(path, detector, feature=feature, phase="untrained")
    return path


@pytest.fixture(scope="module")
def r50_model(tmp_path_factory, r50_weights_path) -> Path:
    return make_model(tmp_path_factory.mktemp("model") / "r50.pt", "i3d-r50", sha256_file(r50_weights_path))


@pytest.fixture(scope="module")
def clip30(tmp_path_factory) -> Path:
    """20 lossless frames at 30 fps: two snippets, the last one padded."""
    return write_lossless(tmp_path_factory.mktemp("videos") / "clip30.mp4", pattern_frames(20, seed=3), fps=30)


def run_score(*args):
    return CliRunner().invoke(main, ["score", *map(str, args)])


def read_csv(text: str) -> list[dict]:
    rows = list(csv.DictReader(io.StringIO(text)))
    return [{"frame": int(r["frame"]), "time_s": float(r["time_s"]), "score": float(r["score"])} for r in rows]


def check_curve(rows: list[dict], n_frames: int, fps: float) -> None:
    assert [r["frame"] for r in rows] == list(range(n_frames))
    assert np.allclose([r["time_s"] for r in rows], np.arange(n_frames) / fps, atol=1e-6, rtol=0)
    scores = np.array([r["score"] for r in rows])
    assert ((scores >= 0) & (scores <= 1)).all()
    # each frame carries its 16-frame snippet's score
    for start in range(0, n_frames, 16):
        assert len(set(scores[start:start + 16])) == 1


def test_json_fields_correction_and_intervals(clip30, r50_model, r50_weights_path):
    common = [clip30, "--model", r50_model, "--weights", r50_weights_path, "--device", "cpu", "--format", "json", "-q"]
    raw = json.loads(run_score(*common, "--no-correction").stdout)
    threshold = 0.5
    result = run_score(*common, "--threshold", threshold)
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert (record["fps"], record["n_frames"], record["n_snippets"], record["partial"]) == (30.0, 20, 2, False)
    assert (record["backbone"], record["crops"], record["correction"], raw["correction"]) == ("i3d-r50", 1, True, False)
    assert len(record["scores"]) == 20
    # video score = the p of the score correction: mean of the top-k raw snippet scores, k = floor(2/16)+1 = 1
    assert record["video_score"] == pytest.approx(max(raw["snippet_scores"]), abs=1e-6)
    corrected = np.sqrt(np.array(raw["snippet_scores"]) * record["video_score"])
    assert np.allclose(record["snippet_scores"], corrected, atol=2e-6)
    assert np.allclose(record["scores"], np.repeat(record["snippet_scores"], 16)[:20], atol=1e-6)
    expected = intervals_above(record["scores"], threshold)
    assert [(i["start_frame"], i["end_frame"]) for i in record["intervals"]] == expected
    for interval in record["intervals"]:
        assert interval["start_s"] == pytest.approx(interval["start_frame"] / 30.0, abs=1e-6)
        assert interval["end_s"] == pytest.approx(interval["end_frame"] / 30.0, abs=1e-6)
    assert raw["intervals"] is None and raw["threshold"] is None


def test_csv_one_row_per_frame_intervals_on_stderr_and_png(tmp_path, clip30, r50_model, r50_weights_path):
    png = tmp_path / "curve.png"
    result = run_score(clip30, "--model", r50_model, "--weights", r50_weights_path, "--device", "cpu", "--threshold", "0", "--plot", png, "-q")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == "frame,time_s,score"
    check_curve(read_csv(result.stdout), 20, 30.0)
    assert "abnormal frames 0-19 (0.00-0.67 s" in result.stderr  # every score is above 0
    assert png.read_bytes()[:8] == PNG_SIGNATURE
    with Image.open(png) as image:
        image.verify()
    with Image.open(png) as image:
        assert image.width >= 800 and image.height >= 300


def test_real_clips_batch_with_a_broken_file(tmp_path, r50_model, r50_weights_path):
    """The three real clips (25 and 29.97 fps) plus a corrupt file: the others are written, exit 1."""
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    names = ["bikes", "carphone_distorted", "carphone_pristine"]
    out = tmp_path / "out"
    result = run_score(VIDEOS / "bikes.mp4", broken, VIDEOS / "carphone_distorted.mp4", VIDEOS / "carphone_pristine.mp4",
                       "--model", r50_model, "--weights", r50_weights_path, "--device", "cpu", "--batch-size", "8",
                       "--out", out, "--plot", tmp_path / "plots", "-q")
    assert result.exit_code == 1, result.output
    assert "broken.mp4" in result.stderr and "1 of 4 video(s) could not be scored" in result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert (summary["scored"], summary["failed"]) == (3, 1)
    archive_files = ["events.csv", "index.html", "summary.csv"]  # the archive summary and its page
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == sorted([f"{n}.csv" for n in names] + archive_files)
    # the archive summary (pipeline/archive.py): highest video score first, the broken file last with its reason
    curves = {n: read_csv((out / f"{n}.csv").read_text()) for n in names}
    with open(out / "summary.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert sorted(r["id"] for r in rows[:3]) == names and [float(r["video_score"]) for r in rows[:3]] == sorted(
        (float(r["video_score"]) for r in rows[:3]), reverse=True)
    assert rows[3]["id"] == "broken" and rows[3]["status"].startswith("failed: ") and rows[3]["video_score"] == ""
    with open(out / "events.csv", newline="") as handle:
        events = [(e["id"], int(e["start_frame"]), int(e["end_frame"])) for e in csv.DictReader(handle)]
    for row in rows[:3]:
        scores = [r["score"] for r in curves[row["id"]]]
        assert row["status"] == "ok" and int(row["n_frames"]) == len(scores)
        assert [(s, e) for i, s, e in events if i == row["id"]] == intervals_above(scores, 0.5) and int(row["n_events"]) == len(intervals_above(scores, 0.5))
    assert [i for i, _, _ in events] == sorted((i for i, _, _ in events), key=[r["id"] for r in rows].index)
    frames = {"bikes": (250, 25.0), "carphone_distorted": (120, 30000 / 1001), "carphone_pristine": (120, 30000 / 1001)}
    for name, (n_frames, fps) in frames.items():
        check_curve(read_csv((out / f"{name}.csv").read_text()), n_frames, fps)
        assert (tmp_path / "plots" / f"{name}.png").read_bytes()[:8] == PNG_SIGNATURE
    assert not (tmp_path / "plots" / "broken.png").exists()


def test_inception_model_refuses_r50_weights(tmp_path, clip30, r50_weights_path):
    model = make_model(tmp_path / "inc.pt", "i3d-inception", get_backbone("i3d-inception").weights.sha256)
    result = run_score(clip30, "--model", model, "--weights", r50_weights_path, "--device", "cpu")
    assert result.exit_code == 2
    assert result.stderr.startswith("vad: error: ") and len(result.stderr.strip().splitlines()) == 1
    assert "is not the i3d-inception weights the model" in result.stderr and result.stdout == ""
    # even when the hash check is waived, the R50 state dict does not fit the Inception network
    result = run_score(clip30, "--model", model, "--weights", r50_weights_path, "--device", "cpu", "--allow-unverified-weights")
    assert result.exit_code == 2 and "state-dict signature does not match this backbone" in result.stderr


def test_feature_dim_mismatch_is_refused(tmp_path, clip30, r50_weights_path):
    model = make_model(tmp_path / "m.pt", "i3d-r50", sha256_file(r50_weights_path), feature_dim=1024)
    result = run_score(clip30, "--model", model, "--weights", r50_weights_path, "--device", "cpu")
    assert result.exit_code == 2
    assert "its detector takes 1024-d features" in result.stderr and "i3d-r50 produces 2048-d" in result.stderr


def test_other_weights_than_recorded_refused_unless_allowed(tmp_path, r50_weights_path):
    clip = write_lossless(tmp_path / "short.mp4", pattern_frames(7, seed=4), fps=30)  # one snippet
    model = make_model(tmp_path / "m.pt", "i3d-r50", "0" * 64)
    result = run_score(clip, "--model", model, "--weights", r50_weights_path, "--device", "cpu")
    assert result.exit_code == 2 and "--allow-unverified-weights" in result.stderr
    result = run_score(clip, "--model", model, "--weights", r50_weights_path, "--device", "cpu", "--allow-unverified-weights", "-q")
    assert result.exit_code == 0, result.output
    check_curve(read_csv(result.stdout), 7, 30.0)


def test_usage_errors(tmp_path, clip30, r50_model, monkeypatch):
    import vad.weights

    result = run_score(clip30, clip30.with_name("other.mp4"), "--model", r50_model)
    assert result.exit_code == 2 and "other.mp4: no such file" in result.stderr
    os.mkfifo(tmp_path / "pipe.mp4")
    result = run_score(tmp_path / "pipe.mp4", "--model", r50_model)
    assert result.exit_code == 2 and "pipe.mp4: not a regular file (a named pipe)" in result.stderr
    other = tmp_path / "b.mp4"  # a second video (one file given twice is one video, as for `vad extract`)
    other.write_bytes(clip30.read_bytes())
    result = run_score(clip30, other, "--model", r50_model)
    assert result.exit_code == 2 and "--out DIR" in result.stderr
    result = run_score(clip30, other, "--model", r50_model, "--out", tmp_path, "--plot", tmp_path / "one.png")
    assert result.exit_code == 2 and "one PNG file for 2 videos" in result.stderr
    result = run_score(clip30, "--model", tmp_path / "missing.pt")
    assert result.exit_code == 2 and "no such model file" in result.stderr
    monkeypatch.setattr(vad.weights, "search_dirs", lambda: [tmp_path])
    monkeypatch.setenv("VAD_HOME", str(tmp_path / "home"))  # an empty data folder: no record of a default model either
    result = run_score(clip30)
    assert result.exit_code == 2 and "no default model" in result.stderr and "--model" in result.stderr


def test_default_model_pointer(tmp_path, r50_model, monkeypatch):
    import vad.weights
    from vad.pipeline.score import ScoreInputError, default_model_path

    monkeypatch.setattr(vad.weights, "search_dirs", lambda: [tmp_path])
    home = tmp_path / "home"
    monkeypatch.setenv("VAD_HOME", str(home))
    (tmp_path / "vad_default_model.pt").write_bytes(b"")
    assert default_model_path() == tmp_path / "vad_default_model.pt"
    (tmp_path / "default_model.json").write_text(json.dumps({"model": str(r50_model)}))
    assert default_model_path() == r50_model  # the pointer wins
    (tmp_path / "default_model.json").write_text(json.dumps({"model": "gone.pt"}))
    with pytest.raises(ScoreInputError, match="gone.pt"):
        default_model_path()
    # The data folder's record (what `vad demo` writes) comes before any weights folder, and a
    # relative PATH is taken from the record's folder.
    home.mkdir()
    (home / "mine.pt").write_bytes(b"")
    (home / "default_model.json").write_text(json.dumps({"model": "mine.pt"}))
    assert default_model_path() == home / "mine.pt"
