"""`vad extract --backend ray`: the same extraction spread over a Ray cluster.

One actor per GPU (or, without GPUs, per `cpus_per_actor` CPUs) loads the backbone once and
takes one video per task; a free actor gets the next video, so long and short videos balance
themselves. The guarantees of the local backend hold because the work goes through the same
pieces: each actor claims a video in the cache, streams it through `video_features` and writes
the entry with `FeatureCache.write` (atomic, metadata last), so a worker killed mid-video leaves
no entry that looks finished and its claim goes stale with its process. Ray restarts a dead
actor (`max_restarts`) and re-runs the task it was running (`max_task_retries`); a video that
kills its worker every time is recorded as failed. The driver only plans, records failures
(one writer for failures.jsonl) and shows progress.

The cache folder, the videos and the weights file must be reachable under the same paths from
every node (a shared file system), as for `--shard I/N` job arrays.
"""
from __future__ import annotations

import logging
import os
import queue
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
from vad.progress import progress_bar

from vad.extract.backbones import get_backbone
from vad.claims import ClaimHeartbeat, process_identity
from vad.extract.cache import FeatureCache
from vad.extract.inputs import VideoItem
from vad.extract.runner import (
    ExtractConfig, ExtractReport, _Batcher, cache_config, is_current, load_backbone, resolve_device, source_stat, videos_to_extract,
)
from vad.extract.snippets import VideoSummary, iter_snippets

log = logging.getLogger("vad")

MISSING_RAY = "--backend ray needs the optional Ray package: pip install 'vad[ray]' (or: pip install 'ray[default]>=2.30')"


class RayUnavailable(Exception):
    """Ray is not installed; the message says how to install it."""


@dataclass(frozen=True)
class RayOptions:
    address: str | None = None  # ray.init address: None = start a local instance, "auto" = the running cluster
    actors: int | None = None  # None = one per GPU in the cluster, else one per cpus_per_actor CPUs
    cpus_per_actor: int = 1  # CPUs each actor reserves (its torch threads and the prefetch thread)
    max_restarts: int = 8  # Ray restarts a dead actor this many times
    max_task_retries: int = 2  # a video whose worker died is re-run this many times, then recorded as failed


def import_ray():
    try:
        import ray
    except ImportError:
        raise RayUnavailable(MISSING_RAY) from None
    return ray


def prefetch(iterator: Iterator, depth: int = 4) -> Iterator:
    """Run `iterator` in a background thread, `depth` items ahead.

    Decoding (PyAV), JPEG and resizing (Pillow) release the GIL, so the next snippets are made
    while the network runs on the current batch: the actor overlaps decode and inference
    without worker processes of its own.
    """
    items: queue.Queue = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def produce():
        try:
            for item in iterator:
                while not stop.is_set():
                    try:
                        items.put(("item", item), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            items.put(("end", done))
        except BaseException as exc:  # handed to the consumer, raised there
            items.put(("error", exc))

    thread = threading.Thread(target=produce, daemon=True)
    thread.start()
    try:
        while True:
            kind, value = items.get()
            if kind == "end":
                return
            if kind == "error":
                raise value
            yield value
    finally:
        stop.set()
        thread.join(timeout=5)


class ExtractWorker:
    """Holds a loaded backbone; `run(item)` extracts one video into the cache (a Ray actor body)."""

    def __init__(self, cache_dir: str, config: ExtractConfig, threads: int):
        torch.set_num_threads(max(1, threads))
        self.config = config
        self.spec = get_backbone(config.backbone)
        self.device = resolve_device(config.device)
        self.model, _ = load_backbone(self.spec, config.weights, self.device, config.allow_unverified_weights)
        self.cache = FeatureCache(cache_dir)
        self.heartbeat = ClaimHeartbeat(self.cache.claim_path).start()  # lives as long as the actor
        self.plan = config.snippet_plan(self.spec, self.device)

    def pid(self) -> int:
        return os.getpid()

    def run(self, item: VideoItem) -> dict:
        """{"status": "done"|"failed"|"claimed"|"skipped", ...}; the entry is in the cache when "done"."""
        owner = process_identity()
        holder = self.cache.claim(item.video_id, owner)
        if holder is not None:
            return {"status": "claimed", "why": f"claimed by pid {holder.get('pid')} on {holder.get('host')}"}
        self.heartbeat.hold(item.video_id)
        try:
            if not self.config.overwrite and is_current(self.cache, item):  # finished meanwhile by another run
                return {"status": "skipped"}
            batcher = _Batcher(self.model, self.spec, self.plan, self.device, self.config.batch_snippets(self.device),
                               self.config.precision)
            summary = VideoSummary()
            try:
                for index, snippet in enumerate(prefetch(iter_snippets(item.path, self.plan, summary))):
                    batcher.add(0, index, snippet)
                batcher.flush()
                features = batcher.take(0)
            except Exception as exc:  # one broken video must not stop the run
                text = str(exc).strip()
                return {"status": "failed", "error": text.splitlines()[0] if text else type(exc).__name__}
            meta = {**summary.as_meta(), "n_snippets": summary.n_snippets, "decode_s": round(summary.decode_s, 3),
                    **source_stat(item.path), "backbone": self.spec.name, "crops": self.config.crops,
                    "profile": self.config.profile, "backend": "ray"}
            self.cache.write(item.video_id, np.asarray(features), meta)
            return {"status": "done", "snippets": int(features.shape[0]), "partial": bool(meta["partial"])}
        finally:
            self.heartbeat.drop(item.video_id)
            self.cache.release_if_owned(item.video_id, owner)


def plan_actors(ray, options: RayOptions) -> tuple[int, dict]:
    """(number of actors, Ray resources of each): one per GPU when the cluster has GPUs, else per CPU group."""
    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    if gpus:
        return options.actors or gpus, {"num_gpus": 1, "num_cpus": options.cpus_per_actor}
    cpus = int(resources.get("CPU", 1))
    return options.actors or max(1, cpus // options.cpus_per_actor), {"num_cpus": options.cpus_per_actor}


def extract_ray(items: list[VideoItem], cache_dir: str | Path, config: ExtractConfig, options: RayOptions,
                progress: bool = True, on_result: Callable[[str, list], None] | None = None) -> ExtractReport:
    """Extract every item into the cache on a Ray cluster; same skips, cache and report as `runner.extract`.

    `on_result(video_id, actors)` is called on the driver after each finished task (tests use it
    to kill an actor mid-run).
    """
    ray = import_ray()
    spec = get_backbone(config.backbone)
    config.check()
    started = time.perf_counter()
    report = ExtractReport()
    cache = FeatureCache(cache_dir)
    # The driver verifies the weights and fixes the cache's configuration before any worker starts.
    _, digest = load_backbone(spec, config.weights, torch.device("cpu"), config.allow_unverified_weights)
    cache.ensure_config(cache_config(spec, config, digest))
    todo = videos_to_extract(items, cache, config, report)
    if not todo:
        report.seconds = time.perf_counter() - started
        return report

    started_ray = not ray.is_initialized()
    if started_ray:
        try:
            ray.init(address=options.address, logging_level=logging.WARNING, log_to_driver=False)
        except ConnectionError as exc:
            raise ValueError(f"--ray-address {options.address}: cannot reach a Ray cluster ({exc})") from None
    try:
        n_actors, resources = plan_actors(ray, options)
        n_actors = min(n_actors, len(todo))
        # Absolute paths: an actor's working directory is Ray's, not the caller's.
        worker_config = replace(config, weights=Path(config.weights).resolve() if config.weights else None)
        actor_class = ray.remote(max_restarts=options.max_restarts, max_task_retries=options.max_task_retries, **resources)(ExtractWorker)
        actors = [actor_class.remote(str(Path(cache_dir).resolve()), worker_config, options.cpus_per_actor) for _ in range(n_actors)]
        log.info("ray: %d actor(s), %s each, for %d video(s)", n_actors, resources, len(todo))
        _dispatch(ray, actors, todo, cache, report, progress, on_result)
    finally:
        if started_ray:
            ray.shutdown()
    report.seconds = time.perf_counter() - started
    return report


def _dispatch(ray, actors: list, todo: list[VideoItem], cache: FeatureCache, report: ExtractReport,
              progress: bool, on_result: Callable[[str, list], None] | None) -> None:
    """Keep every actor busy with one video; record each outcome as it arrives."""
    pending = list(reversed(todo))
    running: dict = {}  # object ref -> (actor, item)
    for actor in actors:
        if pending:
            item = pending.pop()
            running[actor.run.remote(item)] = (actor, item)
    with progress_bar(total=len(todo), desc="videos", unit="video", disable=not progress) as bar:
        while running:
            ready, _ = ray.wait(list(running), num_returns=1)
            actor, item = running.pop(ready[0])
            try:
                outcome = ray.get(ready[0])
            except ray.exceptions.RayError as exc:  # died max_task_retries + 1 times on it, or an error outside the per-video guard
                text = str(exc).strip()
                outcome = {"status": "failed", "error": f"ray worker failed on it ({text.splitlines()[0] if text else type(exc).__name__})"}
            _record(outcome, item, cache, report)
            bar.update(1)
            if on_result is not None:
                on_result(item.video_id, actors)
            if pending:
                item = pending.pop()
                running[actor.run.remote(item)] = (actor, item)


def _record(outcome: dict, item: VideoItem, cache: FeatureCache, report: ExtractReport) -> None:
    status = outcome["status"]
    if status == "done":
        report.extracted.append(item.video_id)
        report.snippets += outcome["snippets"]
        if outcome["partial"]:
            report.partial.append(item.video_id)
    elif status == "skipped":
        report.skipped.append(item.video_id)
    elif status == "claimed":
        report.claimed.append(item.video_id)
        log.warning("%s: %s, left to it", item.video_id, outcome["why"])
    else:
        report.failed.append((item.video_id, outcome["error"]))
        cache.record_failure(item.video_id, str(item.path), outcome["error"])
        log.error("vad: %s: %s", item.video_id, outcome["error"])
