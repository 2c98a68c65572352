"""`vad cache import` / `vad cache export`: features made elsewhere in and out of a cache."""
from __future__ import annotations

import json
from pathlib import Path

import click

from vad.errors import RunFailure
from vad.pipeline.common import progress_disabled, verbosity
from vad.progress import progress_bar


@click.group()
def cache():
    """Import features extracted by others into a cache, or export the pooled training view."""


def _bar(desc: str):
    return lambda items: progress_bar(items, desc=desc, unit="video", disable=progress_disabled())


@cache.command("import")
@click.argument("files", nargs=-1, required=True, metavar="FILE...")
@click.option("--cache", "cache_dir", required=True, type=click.Path(file_okay=False), help="Cache folder to create or extend.")
@click.option("--format", "fmt", type=click.Choice(["auto", "rtfm", "npy", "sultani"]), default="auto", show_default=True,
              help="rtfm: .npy [T,crops,D]; npy: [T,D] or [T,crops,D]; sultani: C3D text [32,4096]; auto: by extension (.npy / .txt).")
@click.option("--strip-suffix", "suffixes", multiple=True, metavar="SUFFIX",
              help="Remove this ending from file stems to form video ids (repeatable, applied in order), e.g. --strip-suffix _i3d.")
@click.option("--group-crops", is_flag=True, help="Stack files named <video>__<k> as crops k of one video (XD-Violence's released features).")
@click.option("--backbone", default="external", show_default=True,
              help="Backbone recorded in cache.json (say i3d-r50 for RTFM's released I3D files, so models trained on them know it).")
@click.option("--root", type=click.Path(file_okay=False), default=None,
              help="Folder where list entries that do not exist as written are looked up by file name. Default: the list's folder.")
@click.option("--overwrite", is_flag=True, help="Re-import videos already in the cache (otherwise skipped).")
@click.option("--frame-counts", multiple=True, type=click.Path(dir_okay=False),
              help="Record each video's frame count (n_frames), also on videos already in the cache: CSV `video,n_frames` or "
                   "UCF's test_anomalyv2.txt / test_normalv2.txt (repeatable). Sultani's 32 segments need it to be evaluated "
                   "against GT in real frames (docs/formats.md).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@verbosity
def import_(*, files, cache_dir, fmt, suffixes, group_crops, backbone, root, overwrite, frame_counts, as_json):
    """Import FILE... (.npy, C3D .txt, @list.txt or RTFM *.list) into a feature cache.

    Video id = file stem (minus --strip-suffix endings). One cache holds one feature
    configuration (dimension, crops). Sultani's files are already pooled to 32 segments:
    segment i of a video of N frames covers frames floor(i*N/32) .. floor((i+1)*N/32) - 1, with
    N from --frame-counts.
    Exit codes: 0 all imported, 1 some file failed (the others are imported), 2 bad input.
    """
    from vad.extract.cache import FeatureCache
    from vad.pipeline.importers import import_features, read_frame_counts

    target = FeatureCache(cache_dir)
    counts = read_frame_counts([Path(p) for p in frame_counts], suffixes) if frame_counts else None
    report = import_features(list(files), target, fmt=fmt, suffixes=suffixes, backbone=backbone, group_crops=group_crops,
                             overwrite=overwrite, root=Path(root) if root else None, frame_counts=counts, progress_wrap=_bar("importing"))
    summary = {"cache": cache_dir, "imported": len(report.imported), "skipped": len(report.skipped), "failed": len(report.failed),
               "frame_counts": len(report.counted)}
    click.echo(json.dumps(summary) if as_json else f"imported {summary['imported']}, skipped {summary['skipped']}, failed {summary['failed']}, "
                                                   f"frame counts {summary['frame_counts']} -> {cache_dir}")
    if report.failed:
        raise RunFailure(f"{len(report.failed)} file(s) failed; see {Path(cache_dir) / 'failures.jsonl'}")


@cache.command("export")
@click.option("--cache", "cache_dir", required=True, type=click.Path(file_okay=False), help="Cache to export.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Folder for <video_id>.npy files.")
@click.option("--segments", type=click.IntRange(min=1), default=32, show_default=True,
              help="Pool each video to this many segments (RTFM's training view, docs/method.md (Training)).")
@verbosity
def export(cache_dir, out_dir, segments):
    """Write each video's pooled view [segments, crops, D] float32 as OUT/<video_id>.npy."""
    from vad.extract.cache import FeatureCache
    from vad.pipeline.importers import export_segments

    source = FeatureCache(cache_dir)
    _ = source.config  # a missing or corrupt cache.json says so before any work
    n = export_segments(source, Path(out_dir), segments, progress_wrap=_bar("exporting"))
    click.echo(f"exported {n} videos -> {out_dir}")
