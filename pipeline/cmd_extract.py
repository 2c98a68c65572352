"""`vad extract`: videos -> I3D features per 16-frame snippet in a resumable cache."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import click

from vad import settings
from vad.errors import RunFailure
from vad.extract.runner import ExtractConfig
from vad.pipeline.common import progress_disabled, ray_options, ray_settings, verbosity

log = logging.getLogger("vad")


@click.command()
@click.argument("inputs", nargs=-1, required=True, metavar="INPUT...")
@click.option("--cache", "cache_dir", default="cache", show_default=True, type=click.Path(file_okay=False), help="Feature cache folder (created when missing).")
@settings.options(ExtractConfig)
@ray_options("this process and its decode workers", "the cache, videos and weights")
@verbosity
def extract(inputs, *, cache_dir, backend, ray_address, ray_actors, ray_cpus, **options):
    """Extract I3D features of videos into a feature cache.

    INPUT is a video file, a folder (searched recursively for video files; ids keep the
    relative path, e.g. Abuse/Abuse001_x264) or @list.txt with one path per line.
    Writes CACHE/features/<id>.npy ([T, crops, D] float32, T = ceil(frames/16)) and
    <id>.json; failures go to CACHE/failures.jsonl and the batch continues.

    Exit codes: 0 all extracted, 1 some video failed, 2 bad command line.
    """
    from vad.pipeline.api import extract_features

    ray = ray_settings(backend, ray_address, ray_actors, ray_cpus)
    report = extract_features(list(inputs), cache_dir, backend=backend, ray=ray, progress=not progress_disabled(),
                              **settings.given(ExtractConfig, options))
    summary = {
        "cache": str(Path(cache_dir)),
        "extracted": len(report.extracted),
        "skipped": len(report.skipped),
        "failed": len(report.failed),
        "partial": len(report.partial),
        "claimed": len(report.claimed),
        "snippets": report.snippets,
        "seconds": round(report.seconds, 2),
        "snippets_per_s": round(report.snippets / report.seconds, 3) if report.seconds else None,
        # the rate once streaming, without model loading and worker start-up (what a long run sees)
        "startup_s": round(report.startup_s, 2),
        "streaming_snippets_per_s": round(report.snippets / (report.seconds - report.startup_s), 3)
        if report.seconds > report.startup_s > 0 else None,
    }
    click.echo(json.dumps(summary))
    if report.failed:
        raise RunFailure(f"{len(report.failed)} of {report.videos} video(s) failed; see {Path(cache_dir) / 'failures.jsonl'}")
