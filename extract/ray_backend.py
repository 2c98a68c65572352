"""`vad extract --backend ray`: the same extraction spread over a Ray cluster.

One actor per GPU (or, without GPUs, per `cpus_per_actor` CPUs) loads the backbone once and
takes one video per task; a free actor gets the next video, so long and short videos balance
themselves. The guarantees of the local backend hold because the work goes through the same
pieces: each actor claims a video in the cache, streams it through the extraction engine and writes
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
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from vad.claims import ClaimHeartbeat, process_identity
from vad.errors import VadError
from vad.extract.backbones import get_backbone
from vad.extract.cache import FeatureCache
from vad.extract.engine import Failed, Finished, Refused, first_line, load_backbone, resolve_device
from vad.extract.inputs import VideoItem
from vad.extract.runner import ExtractConfig, ExtractReport, cache_config, is_current, record_failure, record_refused, videos_to_extract, write_entry
from vad.progress import progress_bar

log = logging.getLogger("vad")

MISSING_RAY = "--backend ray needs the optional Ray package: pip install 'vad[ray]' (or: pip install 'ray[default]>=2.30')"


class RayUnavailable(VadError):
    """Ray is not installed, or its cluster cannot be reached; the message says how to fix it."""


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


class ExtractWorker:
    """Holds the extraction engine; `run(item)` extracts one video into the cache (a Ray actor body)."""

    def __init__(self, cache_dir: str, config: ExtractConfig, threads: int):
        torch.set_num_threads(max(1, threads))
        self.config = config
        self.spec = get_backbone(config.backbone)
        self.device = resolve_device(config.device)
        model, _ = config.load(self.spec, self.device)
        self.engine = config.engine(self.spec, self.device, model)
        self.cache = FeatureCache(cache_dir)
        self.heartbeat = ClaimHeartbeat(self.cache.claim_path).start()  # lives as long as the actor

    def pid(self) -> int:
        return os.getpid()

    def run(self, item: VideoItem) -> Finished | Failed | Refused:
        """The video's outcome; when Finished, its entry is in the cache (the features stay here)."""
        owner = process_identity()
        holder = self.cache.claim(item.video_id, owner)
        if holder is not None:
            return Refused(0, f"claimed by pid {holder.get('pid')} on {holder.get('host')}")
        self.heartbeat.hold(item.video_id)
        try:
            if not self.config.overwrite and is_current(self.cache, item):  # finished meanwhile by another run
                return Refused(0, "done")
            try:
                # decoding runs a few snippets ahead in a thread: the actor overlaps decode and
                # inference without worker processes of its own
                features, summary = self.engine.video(item.path, read_ahead=4)
            except Exception as exc:  # one broken video must not stop the run
                return Failed(0, first_line(exc))
            meta = {**summary.as_meta(), "n_snippets": summary.n_snippets, "decode_s": round(summary.decode_s, 3)}
            report = ExtractReport()
            write_entry(self.cache, item, Finished(0, features, meta), self.spec, self.config, report, backend="ray")
            return Finished(0, features[:0], {**meta, "n_snippets": int(features.shape[0])})
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
    """Extract every item into the cache on a Ray cluster; same skips, cache and report as `runner.run_extraction`.

    `on_result(video_id, actors)` is called on the driver after each finished task (tests use it
    to kill an actor mid-run).
    """
    ray = import_ray()
    config.check()
    spec = get_backbone(config.backbone)
    started = time.perf_counter()
    report = ExtractReport(videos=len(items))
    cache = FeatureCache(cache_dir)
    # The driver verifies the weights and fixes the cache's configuration before any worker starts.
    _, digest = load_backbone(spec, config.weights, torch.device("cpu"), config.allow_unverified_weights, exact=True)
    cache.ensure_config(cache_config(spec, config, digest))
    todo = videos_to_extract(items, cache, config, report)
    if not todo:
        report.seconds = time.perf_counter() - started
        return report

    with ray_session(ray, options):
        # Absolute paths: an actor's working directory is Ray's, not the caller's.
        worker_config = replace(config, weights=Path(config.weights).resolve() if config.weights else None)
        actors = start_actors(ray, options, ExtractWorker, len(todo), str(Path(cache_dir).resolve()), worker_config, options.cpus_per_actor)
        dispatch(ray, actors, todo, lambda item, outcome: _record(outcome, item, cache, report), progress=progress, on_result=on_result)
    report.seconds = time.perf_counter() - started
    return report


@contextmanager
def ray_session(ray, options: RayOptions) -> Iterator[None]:
    """Ray initialised for the block: joins `options.address` (None: a local instance) unless the caller did; shut down after."""
    started_ray = not ray.is_initialized()
    if started_ray:
        try:
            ray.init(address=options.address, logging_level=logging.WARNING, log_to_driver=False)
        except ConnectionError as exc:
            raise RayUnavailable(f"--ray-address {options.address}: cannot reach a Ray cluster ({exc})") from None
    try:
        yield
    finally:
        if started_ray:
            ray.shutdown()


def start_actors(ray, options: RayOptions, worker: type, n_videos: int, *args) -> list:
    """The actors of `worker(*args)`, as plan_actors sizes them (at most one per video), restarted by Ray when they die."""
    n_actors, resources = plan_actors(ray, options)
    n_actors = min(n_actors, n_videos)
    actor_class = ray.remote(max_restarts=options.max_restarts, max_task_retries=options.max_task_retries, **resources)(worker)
    log.info("ray: %d actor(s), %s each, for %d video(s)", n_actors, resources, n_videos)
    return [actor_class.remote(*args) for _ in range(n_actors)]


def dispatch(ray, actors: list, todo: list[VideoItem], on_outcome: Callable[[VideoItem, object], None],
             *, progress: bool, on_result: Callable[[str, list], None] | None) -> None:
    """Keep every actor busy with one video (`actor.run(item)`); `on_outcome(item, outcome)` on the driver as each arrives.
    A task whose worker died more than max_task_retries times (or failed outside the worker's guard) is Failed."""
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
                outcome = Failed(0, f"ray worker failed on it ({first_line(exc)})")
            on_outcome(item, outcome)
            bar.update(1)
            if on_result is not None:
                on_result(item.video_id, actors)
            if pending:
                item = pending.pop()
                running[actor.run.remote(item)] = (actor, item)


def _record(outcome: Finished | Failed | Refused, item: VideoItem, cache: FeatureCache, report: ExtractReport) -> None:
    if isinstance(outcome, Finished):
        report.extracted.append(item.video_id)
        report.snippets += outcome.meta["n_snippets"]
        if outcome.meta["partial"]:
            report.partial.append(item.video_id)
    elif isinstance(outcome, Refused):
        record_refused(item, outcome.why, report)
    else:
        record_failure(cache, item, outcome.error, report)
