"""The extraction flow: videos -> decode workers -> batched backbone -> feature cache.

Decoding and preprocessing run in DataLoader worker processes (one video per worker at a
time) so the network is never starved; the main process batches snippets from any video,
runs the backbone and writes each video's [T, C, D] entry atomically once all its snippets
are through. A broken video is recorded in failures.jsonl and the batch goes on.
"""
from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info
from vad.progress import progress_bar

from vad import weights as weights_store
from vad.extract.backbones import BackboneSpec, get_backbone
from vad.extract.cache import CacheWriteError, FeatureCache
from vad.claims import ClaimHeartbeat, process_identity
from vad.extract.inputs import VideoItem, in_shard
from vad.extract.preprocess import Geometry, finish_snippet, to_network_layout
from vad.extract.snippets import SnippetPlan, VideoSummary, iter_snippets

log = logging.getLogger("vad")

PROFILES = ("reference", "direct")
RESIZE_ON = ("auto", "workers", "device")
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
GPU_BATCH_CLIPS = 64  # clips per forward pass with CUDA by default
MAX_WORKERS = 16  # decode processes by default with a GPU; each holds a few snippets of pinned memory


@dataclass
class ExtractConfig:
    backbone: str = "i3d-r50"  # registry name, see vad.extract.backbones
    weights: Path | None = None  # explicit weights file; None = resolve through weights/
    crops: int = 10  # 10 = TenCrop (the released features), 1 = centre crop
    profile: str = "reference"  # reference = the backbone's reference extractor (JPEG step for i3d-r50); direct = no JPEG
    device: str = "auto"  # auto = CUDA when present, else CPU
    batch_size: int | None = None  # snippets per forward pass, each with `crops` clips; None = batch_snippets()
    precision: str = "fp32"  # fp32 | bf16 | fp16 (autocast); golden parity holds for fp32
    workers: int | None = None  # decode processes; None = auto (0 on CPU, cores - 1 up to 16 with CUDA)
    decoder: str = "auto"  # auto (PyAV, decord fallback per video) | decord | pyav
    # Where resize and crops run: workers (Pillow, in the decode processes) or device (the same
    # arithmetic as integer tensors next to the network: identical features; the workers only
    # decode, and 10 crops of 320x240 send a sixth of the bytes between processes and over the
    # bus). auto = device with CUDA; on a CPU the integer port is 6x slower than Pillow.
    resize_on: str = "auto"
    shard: tuple[int, int] | None = None  # (I, N): only videos whose stable hash falls in shard I of N
    overwrite: bool = False  # recompute videos already in the cache
    allow_unverified_weights: bool = False  # accept a weights file whose sha256 differs from the manifest
    geometry: Geometry = field(default_factory=Geometry)

    def snippet_plan(self, spec: BackboneSpec, device: torch.device) -> SnippetPlan:
        jpeg = spec.reference_jpeg_quality if self.profile == "reference" else None
        return SnippetPlan(crops=self.crops, jpeg_quality=jpeg, decoder=self.decoder, geometry=self.geometry,
                           geometry_on_device=geometry_on_device(self.resize_on, device))

    def batch_snippets(self, device: torch.device) -> int:
        """Explicit batch_size, else 4 on a CPU and 64 clips' worth with CUDA (6
        snippets of 10 crops, 64 of 1): a batch of four 1-crop clips would leave a GPU idle."""
        if self.batch_size is not None:
            return self.batch_size
        return 4 if device.type == "cpu" else max(1, GPU_BATCH_CLIPS // self.crops)

    def check(self) -> None:
        """ValueError naming the first setting out of its choices."""
        for name, value, choices in (("profile", self.profile, PROFILES), ("resize-on", self.resize_on, RESIZE_ON),
                                     ("precision", self.precision, tuple(PRECISIONS))):
            if value not in choices:
                raise ValueError(f"unknown {name} {value!r}; choose one of {', '.join(choices)}")
        if self.crops not in (1, 10):
            raise ValueError(f"--crops must be 1 or 10, got {self.crops}")


@dataclass
class ExtractReport:
    extracted: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    partial: list[str] = field(default_factory=list)
    claimed: list[str] = field(default_factory=list)  # being extracted by another live process: left to it
    snippets: int = 0
    seconds: float = 0.0
    startup_s: float = 0.0  # model loading and decode workers starting, until the first snippet arrives


def geometry_on_device(resize_on: str, device: torch.device) -> bool:
    """Whether resize and crops run next to the network: `device`, or `auto` with CUDA (ExtractConfig.resize_on)."""
    return resize_on == "device" or (resize_on == "auto" and device.type == "cuda")


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {name}: CUDA is not available on this machine (use --device cpu)")
    return device


def load_backbone(spec: BackboneSpec, weights: Path | None, device: torch.device, allow_unverified: bool = False):
    """Build, verify and load the backbone in eval mode; returns (model, weights sha256)."""
    # TF32 would move features by ~1e-3 relative: keep full float32 so features match the golden data.
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    path = weights_store.resolve(spec.weights, weights)
    model = spec.build()
    digest = weights_store.load_weights(model, spec.weights, path, allow_unverified=allow_unverified)
    return model.eval().to(device), digest


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
        "normalisation": spec.normalise.__doc__.strip().splitlines()[0],
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
    """Yields ("snippet", video, index, crops), then ("done", video, meta) or ("failed", video, error)."""

    def __init__(self, items: list[VideoItem], plan: SnippetPlan, claimer: _Claimer | None = None):
        self.items, self.plan, self.claimer = items, plan, claimer

    def __iter__(self):
        info = get_worker_info()
        share = range(len(self.items)) if info is None else range(info.id, len(self.items), info.num_workers)
        for video in share:
            refused = self.claimer(self.items[video]) if self.claimer is not None else None
            if refused is not None:
                yield "claimed", video, refused
                continue
            summary = VideoSummary()
            try:
                for index, crops in enumerate(iter_snippets(self.items[video].path, self.plan, summary)):
                    yield "snippet", video, index, crops
            except Exception as exc:  # one broken video must not stop the batch
                message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                yield "failed", video, message
                continue
            yield "done", video, {**summary.as_meta(), "n_snippets": summary.n_snippets, "decode_s": round(summary.decode_s, 3)}


class _Batcher:
    """Collects snippets from any video and runs the backbone on full batches."""

    def __init__(self, model, spec: BackboneSpec, plan: SnippetPlan, device: torch.device, batch_size: int, precision: str):
        self.model, self.spec, self.plan, self.device = model, spec, plan, device
        self.batch_size, self.dtype = batch_size, PRECISIONS[precision]
        # cuDNN's timed algorithm choice, measured on an H200 (bench/THROUGHPUT.md): bf16 at 10 crops
        # +15-34% with the same golden deviation, fp32 -18%. It tunes again for every new batch
        # shape, and the partial batch that ends each video has one of up to batch_size shapes:
        # with 64-snippet batches (1 crop) that cost more than it saved (117 vs 180 snippets/s).
        # So only for bf16/fp16 with small batches.
        torch.backends.cudnn.benchmark = device.type == "cuda" and self.dtype is not None and batch_size <= 8
        self.pending: list[tuple[int, int, torch.Tensor]] = []
        self.features: dict[int, dict[int, np.ndarray]] = {}
        self.network_s = 0.0
        self._staging: torch.Tensor | None = None  # pinned host buffer of one batch (CUDA only)

    def stage(self, snippets: list[torch.Tensor]) -> torch.Tensor:
        """Stack uint8 snippets into one batch; for CUDA into a reused pinned buffer, so that the
        copy to the device runs at DMA speed and non_blocking really does not block (a fresh
        torch.stack result is pageable memory, which CUDA copies synchronously through a bounce
        buffer). One buffer suffices: flush() ends with the blocking read-back of the results,
        so the copy out of the buffer has finished before the next batch is stacked into it."""
        if self.device.type != "cuda" or snippets[0].device.type == "cuda":
            return torch.stack(snippets)
        shape = (self.batch_size, *snippets[0].shape)
        if self._staging is None or tuple(self._staging.shape) != shape:
            self._staging = torch.empty(shape, dtype=snippets[0].dtype).pin_memory()
        return torch.stack(snippets, out=self._staging[: len(snippets)])

    def add(self, video: int, index: int, snippet: torch.Tensor) -> int:
        """Queue one snippet as iter_snippets yields it; runs the network when a batch is full."""
        if self.plan.geometry_on_device:  # whole frames: on their way to the device, cropped at flush()
            snippet = snippet.to(self.device, non_blocking=True)
        self.pending.append((video, index, snippet))
        return self.flush() if len(self.pending) >= self.batch_size else 0

    def _finish_on_device(self, frames: list[torch.Tensor]) -> list[torch.Tensor]:
        """Resize and crop the batch's whole-frame snippets, one call per frame size (videos of a
        batch may differ), so the kernel launches do not grow with the batch."""
        crops: list[torch.Tensor | None] = [None] * len(frames)
        for shape in dict.fromkeys(tuple(f.shape) for f in frames):
            where = [i for i, f in enumerate(frames) if tuple(f.shape) == shape]
            done = finish_snippet(torch.stack([frames[i] for i in where]), self.plan.crops, self.plan.geometry)
            for i, snippet in zip(where, done):
                crops[i] = snippet
        return crops

    @torch.inference_mode()
    def flush(self) -> int:
        if not self.pending:
            return 0
        started = time.perf_counter()
        snippets = [snippet for _, _, snippet in self.pending]
        if self.plan.geometry_on_device:
            snippets = self._finish_on_device(snippets)
        batch = self.stage(snippets).to(self.device, non_blocking=True)
        n_snippets, n_crops = batch.shape[:2]
        x = self.spec.normalise(to_network_layout(batch)).flatten(0, 1)
        with torch.autocast(self.device.type, dtype=self.dtype, enabled=self.dtype is not None):
            out = self.model(x)
        out = out.float().reshape(n_snippets, n_crops, -1).cpu().numpy()
        for (video, index, _), feats in zip(self.pending, out):
            self.features.setdefault(video, {})[index] = feats
        self.pending.clear()
        self.network_s += time.perf_counter() - started
        return n_snippets

    def has_all(self, video: int, n_snippets: int) -> bool:
        """Whether all n_snippets of `video` have been through the network."""
        return len(self.features.get(video, {})) == n_snippets

    def take(self, video: int) -> np.ndarray:
        """[T, C, D] features of a video whose snippets have all been through the network."""
        parts = self.features.pop(video, {})
        return np.stack([parts[i] for i in range(len(parts))])

    def drop(self, video: int) -> None:
        self.pending = [p for p in self.pending if p[0] != video]
        self.features.pop(video, None)


def video_features(path: Path, model, spec: BackboneSpec, plan: SnippetPlan, device: torch.device,
                   batch_size: int = 4, precision: str = "fp32", progress: bool = False) -> tuple[np.ndarray, VideoSummary]:
    """[T, C, D] features of one video, streamed snippet by snippet (for scoring a single file)."""
    batcher = _Batcher(model, spec, plan, device, batch_size, precision)
    summary = VideoSummary()
    with progress_bar(desc=path.name, unit="snippet", disable=not progress) as bar:
        for index, snippet in enumerate(iter_snippets(path, plan, summary)):
            bar.update(batcher.add(0, index, snippet))
        bar.update(batcher.flush())
    return batcher.take(0), summary


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


def extract(items: list[VideoItem], cache_dir: str | Path, config: ExtractConfig, progress: bool = True) -> ExtractReport:
    """Extract every item into the cache; finished (unchanged) videos are skipped unless overwrite."""
    spec = get_backbone(config.backbone)
    config.check()
    device = resolve_device(config.device)
    cache = FeatureCache(cache_dir)
    report = ExtractReport()
    started = time.perf_counter()
    model, digest = load_backbone(spec, config.weights, device, config.allow_unverified_weights)
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
    batcher = _Batcher(model, spec, plan, device, batch_size, config.precision)
    video_bar = progress_bar(total=len(todo), desc="videos", unit="video", disable=not progress, position=0)
    snippet_bar = progress_bar(desc="snippets", unit="snippet", disable=not progress, position=1)
    heartbeat = ClaimHeartbeat(cache.claim_path).start()
    # Decoded videos whose last snippets still wait in a batch: batches run across video ends,
    # so every forward pass but the last is full (one shape, and no half-empty passes).
    waiting: dict[int, dict] = {}

    def write_finished() -> None:
        for video in [v for v, decoded in waiting.items() if batcher.has_all(v, decoded["n_snippets"])]:
            item, features = todo[video], batcher.take(video)
            meta = {**waiting.pop(video), **source_stat(item.path), "backbone": spec.name, "crops": config.crops, "profile": config.profile}
            try:
                cache.write(item.video_id, features, meta)
            except OSError as exc:  # disk full, quota, permissions: every later video would fail too
                raise CacheWriteError(
                    f"cannot write the features of {item.video_id} into {cache.root}: {exc.strerror or exc}; "
                    f"the {len(report.extracted)} video(s) finished in this run are kept, re-run to resume") from None
            finally:
                cache.release(item.video_id)
            heartbeat.drop(item.video_id)
            report.extracted.append(item.video_id)
            report.snippets += features.shape[0]
            if meta["partial"]:
                report.partial.append(item.video_id)
            video_bar.update(1)

    try:
        for kind, video, *payload in loader:
            item = todo[video]
            if not report.startup_s:
                report.startup_s = time.perf_counter() - started
            if kind == "snippet":
                heartbeat.hold(item.video_id)  # claimed by a worker just before its first snippet
                through = batcher.add(video, payload[0], payload[1])
                snippet_bar.update(through)
                if through:
                    write_finished()
                continue
            if kind == "done":
                waiting[video] = payload[0]
                write_finished()  # its last snippets may have been through already
                continue
            heartbeat.drop(item.video_id)
            if kind == "claimed":
                (report.skipped if payload[0] == "done" else report.claimed).append(item.video_id)
                if payload[0] != "done":
                    log.warning("%s: %s, left to it", item.video_id, payload[0])
            else:  # failed
                batcher.drop(video)
                report.failed.append((item.video_id, payload[0]))
                cache.record_failure(item.video_id, str(item.path), payload[0])
                cache.release(item.video_id)
                log.error("vad: %s: %s", item.video_id, payload[0])
            video_bar.update(1)
        snippet_bar.update(batcher.flush())
        write_finished()
        if waiting:  # every snippet a worker sent has been through the network by now
            raise RuntimeError(f"vad bug: features of {[todo[v].video_id for v in waiting]} incomplete after the last batch")
    finally:
        heartbeat.stop()
        claimer.release_unfinished(todo)
        snippet_bar.close()
        video_bar.close()
    report.seconds = time.perf_counter() - started
    log.debug("network time %.1fs of %.1fs", batcher.network_s, report.seconds)
    return report
