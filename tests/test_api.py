"""The Python API: vad.extract_features / vad.train / vad.evaluate / vad.load_scorer, and README's example run as written."""
from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

import vad
from vad.errors import ConfigError, VadError
from vad.extract.preprocess import Geometry
from vad.synth import make_dataset

ROOT = Path(__file__).resolve().parents[1]
# Tiny crops keep the real i3d-r50 cheap (as the Ray tests do): 24x24 still passes every stride.
SMALL = Geometry(short_side=32, crop_size=24)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("clips"), 2, 2, seed=3, size=(96, 64), n_frames=(32, 48))


def test_extract_train_score_through_the_api(tmp_path, clips, r50_weights_path):
    report = vad.extract_features(clips.videos_dir, tmp_path / "cache", weights=r50_weights_path, crops=1, device="cpu",
                         geometry=SMALL, progress=False)
    assert sorted(report.extracted) == sorted(c.video for c in clips.clips) and report.videos == 4 and not report.failed
    again = vad.extract_features([clips.videos_dir], tmp_path / "cache", weights=str(r50_weights_path), crops=1, device="cpu",
                        geometry=SMALL, progress=False)
    assert again.extracted == [] and len(again.skipped) == 4  # finished videos are skipped: a rerun resumes

    run = vad.train(tmp_path / "cache", clips.labels_csv, out=tmp_path / "run", phases=("bst",), epochs=2, min_steps=3,
                    detector={"hidden_dim": 16, "attention": False}, device="cpu", progress=False, command="test_api")
    assert run.model == tmp_path / "run/model.pt" and run.model.is_file()
    assert [m["iteration"] for m in run.metrics] == [1] and run.final["phase"] == "bst"
    assert run.config.detector.hidden_dim == 16 and run.config.detector.attention is False
    assert json.loads((tmp_path / "run/metrics.json").read_text())["iterations"] == run.metrics

    metrics = vad.evaluate(run.model, tmp_path / "cache", clips.labels_csv, clips.gt_csv, device="cpu", progress=False)
    assert 0.0 <= metrics["auc"] <= 1.0 and metrics["n_videos"] == 4 and "spread_abnormal" in metrics

    scorer = vad.load_scorer(run.model, weights=r50_weights_path, device="cpu")
    clip = next(c for c in clips.clips if c.label == 1)
    curve = scorer.score(clip.path)
    assert curve.frame_scores.shape == (clip.n_frames,) and curve.fps == 25.0 and curve.n_frames == clip.n_frames
    assert ((curve.frame_scores >= 0) & (curve.frame_scores <= 1)).all()
    assert curve.provenance["command"] == "test_api" and curve.provenance["train_videos"]["total"] == 4
    threshold = float(np.median(curve.frame_scores))
    above = np.zeros(curve.n_frames, bool)
    for start, end in curve.intervals(threshold):  # end-exclusive runs of frames above the threshold
        assert 0 <= start < end <= curve.n_frames and above[start:end].sum() == 0
        above[start:end] = True
    np.testing.assert_array_equal(above, curve.frame_scores > threshold)
    # the same video through the Trainer's Run and a scorer loaded again gives the same curve
    np.testing.assert_array_equal(vad.load_scorer(str(run.model), weights=str(r50_weights_path), device="cpu").score(clip.path).frame_scores,
                                  curve.frame_scores)


def test_api_errors_name_the_setting(tmp_path, clips, monkeypatch):
    with pytest.raises(ConfigError, match=r"extract: no setting 'crop'; the settings are .*crops"):
        vad.extract_features(clips.videos_dir, tmp_path / "c", crop=1)
    with pytest.raises(ConfigError, match=r"extract: setting 'crops' \(--crops\): 3 is not one of 10, 1"):
        vad.extract_features(clips.videos_dir, tmp_path / "c", crops=3)
    with pytest.raises(VadError, match="no video files found"):
        vad.extract_features(tmp_path, tmp_path / "c")
    with pytest.raises(ConfigError, match="load_scorer: no setting 'threshhold'"):
        vad.load_scorer(tmp_path / "model.pt", threshhold=0.5)
    monkeypatch.setenv("VAD_WEIGHTS_DIR", str(tmp_path / "empty"))
    monkeypatch.setattr("vad.weights.WEIGHTS_DIR", tmp_path / "nothing")
    with pytest.raises(VadError, match="no default model"):
        vad.load_scorer()


@pytest.mark.parametrize("call, message", [
    (lambda tmp: vad.load_scorer(123), r"load_scorer: setting 'model' \(--model\) takes a path or None, got 123 \(int\)"),
    (lambda tmp: vad.load_scorer(tmp / "m.pt", correction="no"), r"setting 'correction' \(--no-correction\) takes True or False, got 'no'"),
    (lambda tmp: vad.load_scorer(tmp / "m.pt", batch_size=0), r"setting 'batch_size' \(--batch-size\) must be >= 1, got 0"),
    (lambda tmp: vad.load_scorer(tmp / "m.pt", threshold=2), r"setting 'threshold' \(--threshold\) must be >= 0 and <= 1, got 2"),
    (lambda tmp: vad.train(tmp / "c", tmp / "l.csv", iterations="2"), r"train: setting 'iterations' \(--iterations\) takes an integer or None, got '2'"),
    (lambda tmp: vad.train(tmp / "c", tmp / "l.csv", lr=-1.0), r"setting 'lr' \(--lr\) must be > 0, got -1.0"),
    (lambda tmp: vad.train(tmp / "c", tmp / "l.csv", phases=("bst", "nosuch")), r"setting 'phases' \(--phases\): 'nosuch' is not one of bst, ham, as"),
    (lambda tmp: vad.train(tmp / "c", tmp / "l.csv", detector={"dropout": 1.5}), r"detector: setting 'dropout' \(--dropout\) must be >= 0 and < 1"),
    (lambda tmp: vad.train(tmp / "file.txt", tmp / "l.csv"), r"cache .*file.txt: a file; a folder is expected"),
    (lambda tmp: vad.train(tmp / "c", tmp), r"labels .*: a folder; a file is expected"),
    (lambda tmp: vad.extract_features(tmp, tmp / "c", batch_size=0), r"setting 'batch_size' \(--batch-size\) must be >= 1, got 0"),
    (lambda tmp: vad.extract_features(42, tmp / "c"), r"videos takes a path or a list of paths, got 42"),
    (lambda tmp: vad.watch("clip.mp4", window=2), r"watch: setting 'window' \(--window\) must be >= 3, got 2"),
    (lambda tmp: vad.evaluate(tmp / "m.pt", tmp / "c", tmp / "l.csv", tmp / "gt.csv", correction="yes"), r"correction takes True or False"),
])
def test_api_checks_types_ranges_and_paths(tmp_path, call, message):
    """A wrong type, range or kind of path is a ConfigError naming the setting and what it accepts,
    raised before any file is read (none of these paths exists but tmp_path and file.txt)."""
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(ConfigError, match=message):
        call(tmp_path)


def test_a_model_folder_must_be_an_export(tmp_path):
    """--model takes a model.pt or a folder from `vad export`: any other folder is refused, naming its manifest."""
    from vad.pipeline.export import ExportError

    with pytest.raises(ExportError, match=r"no vad-export.json; pass a model.pt or a folder written by `vad export`"):
        vad.load_scorer(tmp_path, device="cpu")


def test_the_old_spelling_of_extract_still_works_with_a_deprecation_warning(tmp_path):
    with pytest.warns(DeprecationWarning, match=r"vad.extract\(...\) is deprecated .* vad.extract_features"):
        with pytest.raises(VadError, match="no video files found"):
            vad.extract(tmp_path, tmp_path / "c")
    assert vad.extract.cache.FeatureCache is not None  # still the package


def readme_example() -> str:
    """The Python block of README's "Python API" section."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Python API"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_readme_example_runs_as_written(tmp_path, inception_weights_path, monkeypatch, capsys):
    example = readme_example()
    assert len(example.strip().splitlines()) <= 12 and "vad.load_scorer" in example and "curve.intervals" in example
    data = make_dataset(tmp_path / "gen", 2, 2, seed=5, size=(160, 120), n_frames=32)
    shutil.copytree(data.videos_dir, tmp_path / "videos")
    shutil.copy(data.labels_csv, tmp_path / "labels.csv")
    shutil.copy(next(c.path for c in data.clips if c.label == 1), tmp_path / "clip.mp4")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("VAD_WEIGHTS_DIR", str(Path(inception_weights_path).parent))
    exec(compile(example, "README.md", "exec"), {})
    printed = capsys.readouterr().out
    assert "25.0" in printed and (tmp_path / "run/model.pt").is_file()
    assert os.path.isdir(tmp_path / "cache/features")
