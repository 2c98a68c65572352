"""`vad extract`: videos -> I3D features per 16-frame snippet in a resumable cache."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import click

from vad import settings
from vad.errors import RunFailure, VadError
from vad.extract.runner import ExtractConfig
from vad.pipeline.common import progress_disabled, verbosity

log = logging.getLogger("vad")


@click.command()
@click.argument("inputs", nargs=-1, required=True, metavar="INPUT...")
@click.option("--cache", "cache_dir", default="cache", show_default=True, type=click.Path(file_okay=False), help="Feature cache folder (created when missing).")
@settings.options(ExtractConfig)
@click.option("--backend", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="local: this process and its decode workers. ray: one actor per GPU (or per --ray-cpus CPUs) on a Ray cluster, one task per "
                   "video, retried when a worker dies; needs `pip install 'vad[ray]'` and the cache, videos and weights on a shared file system.")
@click.option("--ray-address", default=None, metavar="ADDR",
              help="Ray cluster to join (e.g. auto, or ray://head:10001). Default: start a local Ray instance on this machine.")
@click.option("--ray-actors", type=click.IntRange(min=1), default=None,
              help="Number of Ray actors. Default: one per GPU in the cluster, else one per --ray-cpus CPUs.")
@click.option("--ray-cpus", type=click.IntRange(min=1), default=1, show_default=True, help="CPUs each Ray actor reserves (its torch threads).")
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

    if backend != "ray" and (ray_address or ray_actors):
        raise VadError("--ray-address/--ray-actors need --backend ray")
    ray = None
    if backend == "ray":
        from vad.extract.ray_backend import RayOptions

        ray = RayOptions(address=ray_address, actors=ray_actors, cpus_per_actor=ray_cpus)
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
