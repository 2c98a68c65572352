"""Evaluation conventions (docs/method.md, Evaluation) and parity with RTFM's frame arrays on real GT."""
from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import auc, average_precision_score, precision_recall_curve, roc_auc_score

from vad.models.correction import correct_scores
from vad.models.evaluate import evaluate, frame_labels, frame_metrics, frame_scores, hard_anomaly_bins
from vad.pipeline.importers import import_rtfm_gt, video_id_of

from paths import REFERENCE

SH = REFERENCE / "annotations" / "shanghaitech"


def test_frame_scores_repeat_and_truncate():
    assert frame_scores(np.array([0.1, 0.9]), 20).tolist() == [0.1] * 16 + [0.9] * 4
    with pytest.raises(ValueError, match="snippets"):
        frame_scores(np.array([0.1]), 17)


def test_frame_labels_end_exclusive():
    assert frame_labels([(1, 3), (5, 6)], 7).tolist() == [0, 1, 1, 0, 0, 1, 0]


def test_hard_anomaly_bins_by_hand():
    scores = np.array([0.0, 0.4, 0.41, 0.8, 0.81, 1.0, 0.9])
    labels = np.array([1, 1, 1, 1, 1, 1, 0])
    assert hard_anomaly_bins(scores, labels) == {"[0,0.4]": 2 / 6, "(0.4,0.8]": 2 / 6, "(0.8,1]": 2 / 6}


def test_score_gap_and_single_class():
    result = frame_metrics(np.array([0.9, 0.7, 0.2, 0.0]), np.array([1, 1, 0, 0]))
    assert result["score_gap"] == pytest.approx(0.8 - 0.1) and result["auc"] == 1.0
    assert frame_metrics(np.array([0.3, 0.4]), np.array([0, 0]))["auc"] is None


def test_score_correction_by_hand():
    # T = 4: k = 1, p = 0.9
    assert correct_scores(np.array([0.1, 0.9, 0.4, 0.6])) == pytest.approx(np.sqrt(np.array([0.1, 0.9, 0.4, 0.6]) * 0.9))
    # T = 32: k = 3, p = mean(1.0, 0.9, 0.8)
    scores = np.zeros(32)
    scores[:3] = [1.0, 0.9, 0.8]
    assert correct_scores(scores)[0] == pytest.approx(math.sqrt(0.9))


def _sh_lists():
    test = [video_id_of(line, ["_i3d"]) for line in (SH / "shanghai-i3d-test-10crop.list").read_text().split()]
    masks = {p.stem: np.load(p) for p in sorted((SH / "test_frame_mask").glob("*.npy"))}
    return test, masks


def test_parity_with_rtfm_frame_arrays():
    """Random snippet scores evaluated our way equal scikit-learn on RTFM's np.repeat arrays vs gt-sh.npy."""
    gt_array = np.load(SH / "gt-sh.npy")
    test, masks = _sh_lists()
    rng = np.random.default_rng(0)
    abnormal = [v for v in test if v in masks]
    snippets = {v: math.ceil(len(masks[v]) / 16) for v in abnormal}
    rest = (len(gt_array) - 16 * sum(snippets.values())) // 16
    normal = [v for v in test if v not in masks]
    cuts = np.sort(rng.choice(np.arange(1, rest), len(normal) - 1, replace=False))  # any split of the normal tail
    snippets.update({v: int(n) for v, n in zip(normal, np.diff(np.concatenate([[0], cuts, [rest]])))})
    counts = {v: 16 * n for v, n in snippets.items()}  # the cache of imported RTFM features: 16 * T
    gt = import_rtfm_gt(SH / "gt-sh.npy", SH / "shanghai-i3d-test-10crop.list", counts, ["_i3d"])
    scores = {v: rng.random(n) for v, n in snippets.items()}
    ours = evaluate(scores, counts, gt, test)
    rtfm_pred = np.repeat(np.concatenate([scores[v] for v in test]), 16)
    assert ours["n_frames"] == len(gt_array) == len(rtfm_pred)
    precision, recall, _ = precision_recall_curve(gt_array, rtfm_pred)
    assert ours["auc"] == roc_auc_score(gt_array, rtfm_pred)
    assert ours["ap"] == average_precision_score(gt_array, rtfm_pred)
    assert ours["ap_trapezoid"] == auc(recall, precision)


def test_localisation_metrics_see_a_flat_curve():
    from vad.models.evaluate import localisation_metrics

    labels = np.array([0, 0, 1, 1, 0, 0])
    flat = localisation_metrics([(np.full(6, 0.8), labels)], [np.array([0.1, 0.6, 0.2, 0.3])])
    assert flat["auc_abnormal"] == 0.5 and flat["spread_abnormal"] == pytest.approx(0.0, abs=1e-12)
    assert flat["false_alarm_rate"] == 0.25
    curve = np.array([0.1, 0.2, 0.9, 0.8, 0.3, 0.1])
    good = localisation_metrics([(curve, labels)], [])
    assert good["auc_abnormal"] == 1.0 and good["ap_abnormal"] == 1.0
    assert good["spread_abnormal"] == pytest.approx(curve.std()) and good["false_alarm_rate"] is None
    # frame AUC over all videos of the flat detector is high, as it tells the videos apart:
    # the 6 frames of the normal video rank below every abnormal frame, the 4 others tie with them
    both = frame_metrics(np.r_[np.full(6, 0.8), np.full(6, 0.1)], np.r_[labels, np.zeros(6, dtype=int)])
    assert both["auc"] == pytest.approx((6 + 4 * 0.5) / 10)


def test_frame_score_files_stay_inside_their_folder(tmp_path):
    from vad.errors import VadError
    from vad.models.evaluate import write_frame_scores

    written = write_frame_scores(tmp_path / "out", {"cam/a": np.array([0.25, 0.5])}, {"cam/a": 20})
    lines = written[0].read_text().splitlines()
    assert written[0] == (tmp_path / "out/cam/a.csv").resolve() and lines[0] == "frame,score" and len(lines) == 21
    assert lines[1] == "0,0.250000" and lines[-1] == "19,0.500000"
    with pytest.raises(VadError, match="outside"):
        write_frame_scores(tmp_path / "out", {"../escape": np.array([0.5])}, {"../escape": 16})
    assert not (tmp_path / "escape.csv").exists()
