"""`vad gt import`: public ground-truth formats -> our GT CSV `video,start_frame,end_frame`."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from vad.errors import VadError
from vad.pipeline.common import verbosity


@click.group()
def gt():
    """Ground-truth files: convert the public formats into vad's GT CSV."""


@gt.command("import")
@click.argument("source", type=click.Path())
@click.option("--format", "fmt", type=click.Choice(["ucf", "rtfm", "xd", "masks"]), required=True,
              help="ucf: Temporal_Anomaly_Annotation.txt; rtfm: gt-*.npy (+ --list); xd: XD-Violence "
                   "annotations.txt; masks: folder of <video>.npy frame masks (ShanghaiTech test_frame_mask).")
@click.option("--list", "list_path", type=click.Path(dir_okay=False), default=None,
              help="rtfm: the test list whose order gt-*.npy follows (e.g. shanghai-i3d-test-10crop.list).")
@click.option("--frame-counts", multiple=True, type=click.Path(dir_okay=False),
              help="Frame counts: CSV `video,n_frames` or UCF's test_anomalyv2.txt / test_normalv2.txt (repeatable).")
@click.option("--cache", "cache_dir", type=click.Path(file_okay=False), default=None, help="Take frame counts from this cache (metadata n_frames, else 16*T).")
@click.option("--strip-suffix", "suffixes", multiple=True, metavar="SUFFIX",
              help="Remove this ending from names to form video ids (repeatable), e.g. --strip-suffix _i3d for RTFM lists.")
@click.option("--out", "out_path", default="-", show_default=True, help="Output GT CSV; - = stdout.")
@verbosity
def import_(*, source, fmt, list_path, frame_counts, cache_dir, suffixes, out_path):
    """Convert SOURCE to a GT CSV: one row per abnormal interval, end exclusive.

    UCF-Crime end frames are read as exclusive (docs/method.md (Evaluation)). RTFM's gt-*.npy is split back into
    videos with their frame counts (--frame-counts or --cache): each video occupies 16*ceil(n/16)
    frames of it. With frame counts, intervals must lie inside their video (an end at most one
    snippet past it is clipped, with a warning).
    """
    from vad.extract.cache import FeatureCache
    from vad.models.evaluate import cache_frame_counts
    from vad.pipeline.importers import import_mask_folder, import_rtfm_gt, import_ucf_gt, import_xd_gt, read_frame_counts
    from vad.tables import format_gt, write_gt

    counts: dict[str, int] | None = None
    if frame_counts or cache_dir:
        counts = read_frame_counts([Path(p) for p in frame_counts], suffixes)
        if cache_dir:
            store = FeatureCache(cache_dir)
            _ = store.config  # a missing or corrupt cache.json says so first
            counts.update(cache_frame_counts(store, store.video_ids()))
    if fmt == "ucf":
        result = import_ucf_gt(Path(source), suffixes, counts)
    elif fmt == "xd":
        result = import_xd_gt(Path(source), suffixes, counts)
    elif fmt == "masks":
        result, _ = import_mask_folder(Path(source), suffixes)
    else:
        if list_path is None:
            raise VadError("--format rtfm needs --list (the test list in gt-*.npy's order)")
        if counts is None:
            raise VadError("--format rtfm needs frame counts: --frame-counts FILE or --cache DIR")
        result = import_rtfm_gt(Path(source), Path(list_path), counts, suffixes)
    if out_path == "-":
        sys.stdout.write(format_gt(result))
    else:
        write_gt(out_path, result)
        n_rows = sum(len(v) for v in result.values())
        click.echo(f"{n_rows} interval(s) of {sum(1 for v in result.values() if v)} abnormal video(s) ({len(result)} videos) -> {out_path}", err=True)
