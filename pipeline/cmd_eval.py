"""`vad eval`: frame-level ROC-AUC, AP (both conventions), score gap and hard-anomaly bins."""
from __future__ import annotations

import json
from pathlib import Path

import click

from vad.hardware import DEVICE_HELP
from vad.pipeline.common import fmt_optional, progress_disabled, verbosity


@click.command("eval")
@click.option("--model", "model_path", required=True, type=click.Path(dir_okay=False), help="A model.pt written by `vad train`.")
@click.option("--cache", "cache_dir", required=True, type=click.Path(file_okay=False), help="Feature cache holding the test videos.")
@click.option("--labels", "labels_path", required=True, type=click.Path(dir_okay=False),
              help="Test videos, CSV `video,label`; frames are concatenated in this order.")
@click.option("--gt", "gt_path", required=True, type=click.Path(dir_okay=False),
              help="Ground truth CSV `video,start_frame,end_frame` (end exclusive); videos without rows are all-normal.")
@click.option("--no-correction", is_flag=True, help="Evaluate raw detector scores, without the score correction of docs/method.md (Score correction).")
@click.option("--device", default="auto", show_default=True, help=DEVICE_HELP)
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON object: auc, ap, ap_trapezoid, score_gap, auc_abnormal, "
                   "ap_abnormal, spread_abnormal, false_alarm_rate, n_videos, n_frames (+ details).")
@click.option("--scores-out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Also write DIR/<video_id>.csv (`frame,score`, the scores evaluated) for every test video.")
@verbosity
def evaluate(*, model_path, cache_dir, labels_path, gt_path, no_correction, device, as_json, scores_out):
    """Evaluate a trained detector on cached test features with RTFM's conventions.

    Frame scores = snippet scores repeated 16 times, cut to each video's frame count (cache
    metadata n_frames, else 16*T); segment-pooled features (Sultani's C3D, imported with
    --frame-counts) put segment i of N frames on frames floor(i*N/32) .. floor((i+1)*N/32)-1.
    All videos concatenated; AUC = ROC-AUC over frames; AP =
    average_precision_score and ap_trapezoid = auc(recall, precision) as RTFM prints for XD.

    Frame AUC over all videos rewards telling abnormal videos from normal ones; it cannot see a
    flat curve. So also: AUC_A and AP_A over the frames of abnormal videos only (0.5 for a curve
    that does not localise), the spread (mean within-video standard deviation of abnormal
    videos' frame scores) and the false-alarm rate (share of normal videos' frames above 0.5).
    """
    from vad.pipeline.api import evaluate as run_evaluation

    result = run_evaluation(model_path, cache_dir, labels_path, gt_path, correction=not no_correction, device=device,
                            scores_out=scores_out, progress=not progress_disabled())
    if as_json:
        click.echo(json.dumps(result))
        return
    bins = result["hard_anomaly_bins"]
    click.echo(f"videos {result['n_videos']}, frames {result['n_frames']} ({result['n_abnormal_frames']} abnormal), "
               f"score correction {'on' if result['correction'] else 'off'}")
    click.echo(f"AUC            {result['auc']:.4f}")
    click.echo(f"AP             {result['ap']:.4f}   (average_precision_score)")
    click.echo(f"AP trapezoid   {result['ap_trapezoid']:.4f}   (auc(recall, precision), as RTFM prints)")
    click.echo(f"score gap      {result['score_gap']:.4f}")
    click.echo(f"AUC_A          {fmt_optional(result['auc_abnormal'])}   (frames of abnormal videos only)")
    click.echo(f"AP_A           {fmt_optional(result['ap_abnormal'])}")
    click.echo(f"spread         {fmt_optional(result['spread_abnormal'])}   (within-video std of abnormal videos; 0 = flat)")
    click.echo(f"false alarms   {fmt_optional(result['false_alarm_rate'])}   (share of normal videos' frames above 0.5)")
    click.echo("abnormal frames by score: " + ", ".join(f"{k} {v:.3f}" for k, v in bins.items()))
