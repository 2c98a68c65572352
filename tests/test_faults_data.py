"""Faults of real footage and real feature sets: NaN scores, corrupt cache metadata, and Sultani's
segment-pooled C3D features evaluated in UCF-Crime's real frame numbers.

Each test gives the input, the exit code and the one-line message expected, and what files are
left behind. Models are untrained detectors saved with models/io.py; the raw-video cases use the
i3d-r50 architecture with the golden generator's weights at 112-pixel crops (about 0.1 s per
snippet on a CPU, as tests/test_watch.py).
"""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from sklearn.metrics import roc_auc_score

from vad.extract.backbones import get_backbone
from vad.extract.cache import FeatureCache
from vad.extract.runner import ExtractConfig, cache_config
from vad.models.correction import correct_scores
from vad.models.detector import ARMSDetector, DetectorConfig, build_detector
from vad.models.inference import score_video
from vad.models.io import load_model, save_model
from vad.models.monitors import segment_truth
from vad.pipeline.cli import main
from vad.tables import read_gt, write_gt, write_labels
from vad.weights import sha256_file

from paths import REFERENCE
from videos import pattern_frames, write_lossless

C3D = REFERENCE / "features" / "ucf-crime-c3d"
UCF = REFERENCE / "annotations" / "ucf-crime"


def vad(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def error_line(result) -> str:
    """The one line a refusal prints: stderr must hold exactly one line starting 'vad: error: '."""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vad: error: "), result.output
    return lines[0]


def poisoned(model: ARMSDetector) -> ARMSDetector:
    """Every weight NaN, as a diverged training run leaves them."""
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.fill_(float("nan"))
    return model


def small_model(path, dim: int, backbone: str = "external", nan: bool = False):
    torch.manual_seed(0)
    model = ARMSDetector(DetectorConfig(feature_dim=dim, hidden_dim=16))
    save_model(path, poisoned(model) if nan else model, feature={"backbone": backbone, "feature_dim": dim, "crops": 1, "clip_len": 16})
    return path


# -- 4. NaN scores ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def nan_r50_model(tmp_path_factory, r50_weights_path):
    spec = get_backbone("i3d-r50")
    detector = poisoned(build_detector(feature_dim=spec.feature_dim, hidden_dim=16, fc_dim=8, attention=False))
    feature = cache_config(spec, ExtractConfig(backbone="i3d-r50", crops=1, profile="direct"), sha256_file(r50_weights_path))
    feature.update(short_side=128, crop_size=112)
    path = tmp_path_factory.mktemp("model") / "nan.pt"
    save_model(path, detector, feature=feature, phase="untrained")
    return path


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("videos")
    return [write_lossless(folder / f"{name}.mp4", pattern_frames(20, seed=seed), fps=30) for seed, name in enumerate(("a", "b"))]


def test_score_nan_model_refuses_each_video_and_writes_nothing_for_it(tmp_path, clips, nan_r50_model, r50_weights_path):
    """`vad score a.mp4 b.mp4 --model nan.pt --format json --out OUT --html REPORT`: exit 1; per video one
    line 'vad: <video>: the model nan.pt gave NaN or infinite scores ...', both videos tried (the batch
    goes on); OUT holds no curve (summary.csv lists the two failures), REPORT only index.html listing the two failures (no proxy, CSV, JSON)."""
    out, report = tmp_path / "out", tmp_path / "report"
    result = vad("score", *clips, "--model", nan_r50_model, "--weights", r50_weights_path, "--device", "cpu", "--format", "json",
                 "--out", out, "--html", report, "-q")
    assert result.exit_code == 1, result.output
    summary = json.loads(result.stdout)
    assert summary["scored"] == 0 and summary["failed"] == 2 and summary["files"] == []
    for clip, failure in zip(clips, summary["failures"]):
        assert failure["video"] == str(clip)
        assert failure["error"].startswith(f"{clip}: the model {nan_r50_model} gave NaN or infinite scores")
        assert f"vad: {failure['error']}" in result.stderr
    assert "Out of range float" not in result.output and "NaN," not in result.output
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == ["events.csv", "summary.csv"]  # no curve
    summary_rows = (out / "summary.csv").read_text().splitlines()[1:]  # the archive summary lists both failures, no event
    assert len(summary_rows) == 2 and all(",failed: " in row for row in summary_rows) and len((out / "events.csv").read_text().splitlines()) == 1
    assert sorted(p.name for p in report.iterdir()) == ["index.html"]
    assert result.stderr.strip().splitlines()[-1] == f"vad: error: 2 of 2 video(s) could not be scored: {clips[0]}, {clips[1]}"


def test_watch_nan_model_stops_with_one_line_and_writes_no_nan(tmp_path, clips, nan_r50_model, r50_weights_path):
    """`vad watch a.mp4 --model nan.pt --out w.jsonl`: exit 1, one line 'vad: error: <source>: the model
    nan.pt gave a NaN or infinite score at frames 0-16 ...'; no JSON line on stdout or in w.jsonl."""
    jsonl = tmp_path / "w.jsonl"
    result = vad("watch", clips[0], "--model", nan_r50_model, "--weights", r50_weights_path, "--device", "cpu", "--out", jsonl, "-q")
    assert result.exit_code == 1, result.output
    line = error_line(result)
    assert line.startswith(f"vad: error: {clips[0]}: the model {nan_r50_model} gave a NaN or infinite score at frames 0-16"), line
    assert result.stdout == "" and jsonl.read_text() == ""


@pytest.fixture()
def tiny(tmp_path):
    """4 videos of 4 snippets, 8-d features, 60 frames each; v1 and v3 abnormal."""
    cache = FeatureCache(tmp_path / "cache")
    cache.ensure_config({"backbone": "external", "feature_dim": 8, "crops": 1, "clip_len": 16})
    rng = np.random.default_rng(0)
    for i in range(4):
        cache.write(f"v{i}", rng.normal(size=(4, 1, 8)).astype(np.float32), {"n_frames": 60})
    write_labels(tmp_path / "labels.csv", {"v0": 0, "v1": 1, "v2": 0, "v3": 1})
    write_gt(tmp_path / "gt.csv", {"v1": [(0, 20)], "v3": [(16, 40)]})
    return cache


def eval_args(cache, model, *extra):
    root = cache.root.parent
    return ["eval", "--model", model, "--cache", cache.root, "--labels", root / "labels.csv", "--gt", root / "gt.csv",
            "--device", "cpu", "-q", *extra]


def test_eval_nan_model_refused_with_one_line(tmp_path, tiny):
    """`vad eval --model nan.pt --scores-out S`: exit 1, 'vad: error: v0: the model nan.pt gave NaN or
    infinite scores ...'; S is not created."""
    model = small_model(tmp_path / "nan.pt", 8, nan=True)
    result = vad(*eval_args(tiny, model, "--scores-out", tmp_path / "scores"))
    assert result.exit_code == 1, result.output
    assert error_line(result).startswith(f"vad: error: v0: the model {model} gave NaN or infinite scores (4 of 4 snippets)")
    assert not (tmp_path / "scores").exists()


# -- 7. corrupt cache metadata ------------------------------------------------------------------
@pytest.mark.parametrize("field, value, why", [
    ("n_frames", 1000, "n_frames 1000 does not fit its 4 snippets of 16 frames (at most 64)"),
    ("n_frames", "abc", "n_frames 'abc' is not a whole number of at least 1"),
    ("n_frames", -3, "n_frames -3 is not a whole number of at least 1"),
    ("n_snippets", 7, "n_snippets 7 does not match its features' 4 rows"),
    ("segments", "32", "segments '32' is not a whole number of at least 1"),
])
def test_eval_corrupt_metadata_field_named(tmp_path, tiny, field, value, why):
    """v2's metadata with a bad field -> `vad eval`: exit 2, 'vad: error: <cache>/features/v2.json: corrupt
    metadata: <field> ...; re-extract or re-import the video with --overwrite'; nothing written."""
    meta = json.loads(tiny.meta_path("v2").read_text())
    tiny.meta_path("v2").write_text(json.dumps({**meta, field: value}))
    result = vad(*eval_args(tiny, small_model(tmp_path / "m.pt", 8), "--scores-out", tmp_path / "scores"))
    assert result.exit_code == 2, result.output
    assert error_line(result) == (f"vad: error: {tiny.meta_path('v2')}: corrupt metadata: {why}; "
                                  "re-extract or re-import the video with --overwrite")
    assert not (tmp_path / "scores").exists()


def test_train_and_gt_import_corrupt_metadata_exit_2(tmp_path, tiny):
    """Metadata that is a JSON list, and n_frames 'abc': `vad train` and `vad gt import --cache` exit 2
    with the entry and the field; train leaves no model."""
    tiny.meta_path("v1").write_text("[1, 2]")
    train = vad("train", "--cache", tiny.root, "--labels", tmp_path / "labels.csv", "--out", tmp_path / "run", "--device", "cpu",
                "--epochs", 1, "--min-steps", 0, "--phases", "bst", "--iterations", 1, "--hidden-dim", 16, "-q")
    assert train.exit_code == 2, train.output
    assert error_line(train) == f"vad: error: {tiny.meta_path('v1')}: corrupt metadata: not a JSON object; " \
                                "re-extract or re-import the video with --overwrite"
    assert not (tmp_path / "run" / "model.pt").exists()
    tiny.meta_path("v1").write_text(json.dumps({"video_id": "v1", "n_snippets": 4, "n_frames": "abc"}))
    gt = vad("gt", "import", UCF / "Temporal_Anomaly_Annotation.txt", "--format", "ucf", "--cache", tiny.root, "--out", tmp_path / "gt2.csv")
    assert gt.exit_code == 2, gt.output
    assert "v1.json: corrupt metadata: n_frames 'abc' is not a whole number" in error_line(gt)
    assert not (tmp_path / "gt2.csv").exists()


# -- 10. Sultani's C3D features in real frame numbers --------------------------------------------
SEGMENTS = 32
# video -> (label, frame count N); N deliberately not multiples of 32
SULTANI = {"Abuse001_x264": (1, 1000), "Arson002_x264": (1, 777), "Normal_Videos_001_x264": (0, 451),
           "Normal_Videos_002_x264": (0, 1234)}
SULTANI_GT = {"Abuse001_x264": [(156, 187), (900, 1000)], "Arson002_x264": [(100, 300)]}


def sultani_bounds(n_frames: int) -> list[tuple[int, int]]:
    """Sultani's mapping, written out: segment i covers frames floor(i*N/32) .. floor((i+1)*N/32) - 1."""
    return [(math.floor(i * n_frames / SEGMENTS), math.floor((i + 1) * n_frames / SEGMENTS)) for i in range(SEGMENTS)]


@pytest.fixture(scope="module")
def sultani(tmp_path_factory):
    """Sultani-style C3D text files (32 lines of 8 numbers), UCF-Crime's annotation and v2 frame-count lists."""
    root = tmp_path_factory.mktemp("sultani")
    rng = np.random.default_rng(4)
    for video, (label, _) in SULTANI.items():
        features = rng.normal(size=(SEGMENTS, 8))
        if label:
            for start, end in SULTANI_GT[video]:
                for i, (lo, hi) in enumerate(sultani_bounds(SULTANI[video][1])):
                    features[i] += 2.0 * (lo < end and start < hi)
        np.savetxt(root / f"{video}.txt", features, fmt="%.6f")
    annotation = "".join(f"{v}.mp4  {'Abuse' if v.startswith('Abuse') else 'Arson' if v.startswith('Arson') else 'Normal'}  "
                         + "  ".join(f"{s}  {e}" for s, e in (SULTANI_GT.get(v, []) + [(-1, -1)] * 2)[:2]) + "  \n" for v in SULTANI)
    (root / "Temporal_Anomaly_Annotation.txt").write_text(annotation)
    (root / "test_anomalyv2.txt").write_text("".join(f"X/{v}.mp4|{n}|[{', '.join(str(x) for i in SULTANI_GT[v] for x in i)}]\n"
                                                     for v, (label, n) in SULTANI.items() if label))
    (root / "test_normalv2.txt").write_text("".join(f"Normal_Videos_event/{v}.mp4 {n} -1\n" for v, (label, n) in SULTANI.items() if not label))
    write_labels(root / "labels.csv", {v: label for v, (label, _) in SULTANI.items()})
    gt = vad("gt", "import", root / "Temporal_Anomaly_Annotation.txt", "--format", "ucf", "--frame-counts", root / "test_anomalyv2.txt",
             "--frame-counts", root / "test_normalv2.txt", "--out", root / "gt.csv", "-q")
    assert gt.exit_code == 0, gt.output
    assert read_gt(root / "gt.csv") == SULTANI_GT
    return root


def test_sultani_without_frame_counts_eval_says_how_to_give_them(tmp_path, sultani):
    """C3D files imported without --frame-counts, GT in real frames -> `vad eval`: exit 2, one line saying
    the video's 32 segments have no frame count, that the GT counts real frames, and to import with
    --frame-counts (was: 'interval [156, 187) ... ends after its 512 frames')."""
    cache = tmp_path / "cache"
    imported = vad("cache", "import", *sorted(sultani.glob("*_x264.txt")), "--cache", cache, "-q")
    assert imported.exit_code == 0, imported.output
    result = vad("eval", "--model", small_model(tmp_path / "m.pt", 8), "--cache", cache, "--labels", sultani / "labels.csv",
                 "--gt", sultani / "gt.csv", "--device", "cpu", "-q")
    assert result.exit_code == 2, result.output
    assert error_line(result) == (
        f"vad: error: {cache}/features/Abuse001_x264.json: 'Abuse001_x264' holds 32 segments pooled over the whole video "
        "(Sultani's C3D features) and no frame count, and GT files count real frames; record the frame counts with "
        "`vad cache import FILE... --cache CACHE --frame-counts COUNTS` (a CSV video,n_frames, or UCF-Crime's "
        "test_anomalyv2.txt and test_normalv2.txt)")
    # the same import again, with the counts: recorded on the entries already there, features untouched
    before = FeatureCache(cache).feature_path("Abuse001_x264").stat().st_mtime_ns
    again = vad("cache", "import", *sorted(sultani.glob("*_x264.txt")), "--cache", cache, "--frame-counts", sultani / "test_anomalyv2.txt",
                "--frame-counts", sultani / "test_normalv2.txt", "--json", "-q")
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout) == {"cache": str(cache), "imported": 0, "skipped": 4, "failed": 0, "frame_counts": 4}
    assert FeatureCache(cache).meta("Abuse001_x264")["n_frames"] == 1000
    assert FeatureCache(cache).feature_path("Abuse001_x264").stat().st_mtime_ns == before


def test_import_frame_counts_that_do_not_fit(tmp_path):
    """`vad cache import a.npy --frame-counts` with 100 frames for 3 snippets: exit 1, the failure names the file and the
    count, the video is not imported; a count of 0 in the counts file: exit 2 naming the file and line, nothing written."""
    np.save(tmp_path / "a.npy", np.ones((3, 8), np.float32))
    (tmp_path / "counts.csv").write_text("video,n_frames\na,100\n")
    result = vad("cache", "import", tmp_path / "a.npy", "--cache", tmp_path / "c", "--frame-counts", tmp_path / "counts.csv", "-q")
    assert result.exit_code == 1, result.output
    assert FeatureCache(tmp_path / "c").failures()[0]["error"] == (
        f"{tmp_path}/a.npy: the frame count 100 of 'a' (--frame-counts) does not fit its features (100 frames need 7 snippets, got 3)")
    assert FeatureCache(tmp_path / "c").video_ids() == []
    (tmp_path / "zero.csv").write_text("video,n_frames\na,0\n")
    zero = vad("cache", "import", tmp_path / "a.npy", "--cache", tmp_path / "d", "--frame-counts", tmp_path / "zero.csv", "-q")
    assert zero.exit_code == 2, zero.output
    assert error_line(zero) == f"vad: error: {tmp_path}/zero.csv:2: frame count 0 of 'a' is not a whole number of at least 1"
    assert not (tmp_path / "d").exists()


@pytest.fixture(scope="module")
def sultani_cache(sultani):
    counts = sultani / "counts.csv"
    counts.write_text("video,n_frames\n" + "".join(f"{v},{n}\n" for v, (_, n) in SULTANI.items()))
    result = vad("cache", "import", *sorted(sultani.glob("*_x264.txt")), "--cache", sultani / "cache", "--frame-counts", counts, "-q")
    assert result.exit_code == 0, result.output
    return FeatureCache(sultani / "cache")


def test_sultani_eval_maps_segments_to_real_frames(tmp_path, sultani, sultani_cache):
    """C3D files imported with --frame-counts, the annotation in real frames -> `vad eval --scores-out S --json`:
    exit 0; S/<id>.csv has N rows, frame f carries segment i's score for floor(i*N/32) <= f < floor((i+1)*N/32);
    AUC equals roc_auc_score over those frames and the GT's frame labels."""
    assert sultani_cache.meta("Abuse001_x264")["n_frames"] == 1000 and sultani_cache.meta("Abuse001_x264")["segments"] == 32
    model = small_model(tmp_path / "m.pt", 8)
    result = vad("eval", "--model", model, "--cache", sultani_cache.root, "--labels", sultani / "labels.csv", "--gt", sultani / "gt.csv",
                 "--device", "cpu", "--json", "--scores-out", tmp_path / "scores", "-q")
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    assert metrics["n_frames"] == sum(n for _, n in SULTANI.values()) == 3462
    assert metrics["n_abnormal_frames"] == 31 + 100 + 200
    detector, _ = load_model(model)
    all_scores, all_labels = [], []
    for video, (_, n) in SULTANI.items():
        segment = correct_scores(score_video(detector, sultani_cache.load(video)))
        expected = np.empty(n)
        for i, (lo, hi) in enumerate(sultani_bounds(n)):
            expected[lo:hi] = segment[i]
        rows = (tmp_path / "scores" / f"{video}.csv").read_text().splitlines()
        assert rows[0] == "frame,score" and len(rows) == n + 1
        written = np.array([float(r.split(",")[1]) for r in rows[1:]])
        assert np.allclose(written, expected, atol=1e-6, rtol=0), video
        labels = np.zeros(n, np.uint8)
        for start, end in SULTANI_GT.get(video, []):
            labels[start:end] = 1
        all_scores.append(expected)
        all_labels.append(labels)
        if video == "Abuse001_x264":  # N = 1000: segment 4 is frames 125..155, 5 is 156..186 (the first GT interval), 31 is 968..999
            assert written[155] == round(segment[4], 6) and written[156] == written[186] == round(segment[5], 6)
            assert written[187] == round(segment[6], 6) and written[968] == written[999] == round(segment[31], 6)
            assert labels[155] == 0 and labels[156:187].all() and labels[187] == 0
    assert metrics["auc"] == pytest.approx(roc_auc_score(np.concatenate(all_labels), np.concatenate(all_scores)), abs=1e-12)


def test_segment_truth_of_pooled_segments_uses_the_same_mapping():
    """--train-gt on Sultani's layout: segment 5 of a 1000-frame video is frames 156..186 exactly."""
    truth = segment_truth([(156, 187)], 32, 1000, 32, pooled=True)
    assert np.flatnonzero(truth).tolist() == [5]
    assert np.flatnonzero(segment_truth([(150, 190)], 32, 1000, 32, pooled=True)).tolist() == [5]  # 6 of 31 and 3 of 32 frames do not count


def test_sultani_train_with_eval_and_train_gt_in_real_frames(tmp_path, sultani, sultani_cache):
    """`vad train` on the C3D cache with --eval-labels/--gt/--train-gt in real frames: exit 0; every iteration's
    evaluation covers the videos' real frames, and pseudo-label precision sees both GT videos."""
    out = tmp_path / "run"
    result = vad("train", "--cache", sultani_cache.root, "--labels", sultani / "labels.csv", "--eval-labels", sultani / "labels.csv",
                 "--gt", sultani / "gt.csv", "--train-gt", sultani / "gt.csv", "--out", out, "--device", "cpu", "--epochs", 1,
                 "--min-steps", 0, "--batch-videos", 2, "--phases", "bst", "--iterations", 1, "--hidden-dim", 16, "-q")
    assert result.exit_code == 0, result.output
    last = json.loads((out / "metrics.json").read_text())["iterations"][-1]
    assert last["eval"]["n_frames"] == 3462 and last["eval"]["n_abnormal_frames"] == 331
    assert last["pseudo_label_precision"]["videos"] == 2


def test_real_ucf_c3d_files_evaluate_against_the_official_annotation(tmp_path):
    """The released C3D files of Explosion008 (1748 frames) and Normal_Videos_006 (451), imported with UCF-Crime's
    v2 frame-count lists, against Temporal_Anomaly_Annotation.txt's interval [1005, 1245): `vad eval` exit 0 over
    2199 real frames, 240 abnormal (was: exit 2 'interval [1005, 1245) ... ends after its 512 frames')."""
    cache = tmp_path / "cache"
    counts = ["--frame-counts", UCF / "test_anomalyv2.txt", "--frame-counts", UCF / "test_normalv2.txt"]
    imported = vad("cache", "import", *sorted(C3D.glob("*.txt")), "--cache", cache, *counts, "-q")
    assert imported.exit_code == 0, imported.output
    official = vad("gt", "import", UCF / "Temporal_Anomaly_Annotation.txt", "--format", "ucf", *counts, "--out", tmp_path / "all.csv", "-q")
    assert official.exit_code == 0, official.output
    write_gt(tmp_path / "gt.csv", {"Explosion008_x264": read_gt(tmp_path / "all.csv")["Explosion008_x264"]})
    write_labels(tmp_path / "labels.csv", {"Explosion008_x264": 1, "Normal_Videos_006_x264": 0})
    result = vad("eval", "--model", small_model(tmp_path / "m.pt", 4096), "--cache", cache, "--labels", tmp_path / "labels.csv",
                 "--gt", tmp_path / "gt.csv", "--device", "cpu", "--json", "-q")
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    assert (metrics["n_frames"], metrics["n_abnormal_frames"]) == (1748 + 451, 1245 - 1005)
