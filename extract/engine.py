"""The extraction engine: a backbone loaded once, snippets of many videos batched through it.

Every path from decoded video to network output goes through `Engine`: `vad extract` (the
local runner and the Ray actors), `vad score` and `vad classify`. A snippet stream is a
sequence of typed events (`Snippet`, then `Decoded` or `Failed` per video, or `Refused` for a
video this process must leave alone); `Engine.run` turns it into typed outcomes (`Started`,
`Through`, `Finished`, `Failed`, `Refused`). Batches run across video ends, so every forward
pass but the last is full: one shape, and no half-empty passes.

`configure_backends` is the one place that sets torch's numerics flags.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vad import weights as weights_store
from vad.errors import ConfigError
from vad.extract.backbones import BackboneSpec
from vad.extract.decode import decode_ahead
from vad.extract.preprocess import finish_snippet, to_network_layout
from vad.extract.snippets import SnippetPlan, VideoSummary, iter_snippets
from vad.progress import progress_bar

log = logging.getLogger("vad")

# Clips per forward pass on a CPU. A CPU runs one clip as fast as many (i3d-r50 inference form,
# 2 cores: 3.7 clips/s at 1, 3.5 at 4), and one clip's largest activation (25 MB) stays under
# glibc's 32 MB mmap ceiling, so freed memory is reused instead of being mapped and faulted in
# again every pass: `vad extract --crops 10` of clip40, 30 clips per batch, went from 22% to 7%
# of its CPU time in the kernel and from 2.6 to 1.4 GiB peak RSS (bench/THROUGHPUT.md).
CPU_CLIPS_PER_PASS = 1

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


# -- events of a snippet stream (plain data: they cross from decode workers and Ray actors) ----
@dataclass(frozen=True)
class Snippet:
    video: int  # the stream's index of the video
    index: int  # snippet t of the video
    crops: torch.Tensor  # uint8 [crops, clip_len, crop, crop, 3], or whole frames (SnippetPlan.geometry_on_device)

    def pin_memory(self) -> Snippet:
        """What DataLoader(pin_memory=True) calls: page-locked crops copy to the GPU asynchronously."""
        return Snippet(self.video, self.index, self.crops.pin_memory())


@dataclass(frozen=True)
class Decoded:
    video: int
    meta: dict  # VideoSummary.as_meta() plus n_snippets and decode_s: every snippet has been sent


@dataclass(frozen=True)
class Failed:
    video: int
    error: str  # one line


@dataclass(frozen=True)
class Refused:
    video: int
    why: str  # "done" (finished by another process meanwhile) or "claimed by pid ... on host"


# -- outcomes of Engine.run ---------------------------------------------------------------------
@dataclass(frozen=True)
class Started:
    video: int  # its first snippet arrived


@dataclass(frozen=True)
class Through:
    snippets: int  # snippets through the network in one forward pass


@dataclass(frozen=True)
class Finished:
    video: int
    features: np.ndarray  # [T, crops, D] float32 (or the head's outputs)
    meta: dict


Event = Snippet | Decoded | Failed | Refused
Outcome = Started | Through | Finished | Failed | Refused


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def video_events(video: int, path: Path, plan: SnippetPlan) -> Iterator[Event]:
    """The events of one video: its snippets, then Decoded, or Failed at the first decode error."""
    summary = VideoSummary()
    try:
        for index, crops in enumerate(iter_snippets(path, plan, summary)):
            yield Snippet(video, index, crops)
    except Exception as exc:  # one broken video must not stop the batch
        yield Failed(video, first_line(exc))
        return
    yield Decoded(video, {**summary.as_meta(), "n_snippets": summary.n_snippets, "decode_s": round(summary.decode_s, 3)})


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"--device {name!r}: expected auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {name}: CUDA is not available on this machine (use --device cpu)")
    return device


def geometry_on_device(resize_on: str, device: torch.device) -> bool:
    """Whether resize and crops run next to the network: `device`, or `auto` with CUDA (ExtractConfig.resize_on)."""
    return resize_on == "device" or (resize_on == "auto" and device.type == "cuda")


def configure_backends(device: torch.device, precision: str, batch_size: int) -> None:
    """Torch's numerics flags for extraction, set here only.

    TF32 would move features by ~1e-3 relative: full float32 keeps them on the golden data.
    cuDNN's timed algorithm choice, measured on an H200 (bench/THROUGHPUT.md): bf16 at 10 crops
    +15-34% with the same golden deviation, fp32 -18%. It tunes again for every new batch shape,
    and the partial batch that ends each video has one of up to batch_size shapes: with
    64-snippet batches (1 crop) that cost more than it saved (117 vs 180 snippets/s). So only
    for bf16/fp16 with small batches.
    """
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = device.type == "cuda" and PRECISIONS[precision] is not None and batch_size <= 8


def load_backbone(spec: BackboneSpec, weights: Path | None, device: torch.device, allow_unverified: bool = False, exact: bool = False):
    """Build, verify and load the backbone in eval mode; returns (model, weights sha256).

    The model is the backbone's inference form (BackboneSpec.fast: BatchNorm folded, 2-D
    convolutions of frames; the golden features within 1e-5 of max|ref|) unless `exact`, which
    keeps the network as its architecture module writes it."""
    path = weights_store.resolve(spec.weights, weights)
    model = spec.build()
    digest = weights_store.load_weights(model, spec.weights, path, allow_unverified=allow_unverified)
    model = model.eval() if exact else spec.fast(model.eval())
    return model.to(device), digest


def network_form(exact: bool) -> str:
    """How a cache entry and a score file name the network that made them (load_backbone's `exact`)."""
    return "exact" if exact else "fast"


def scoring_precision(device: torch.device) -> str:
    """`--precision auto` of the commands that score: fp16 on CUDA, fp32 on every CPU.

    Measured with bench/precision.py against fp32 on 13 clips (3 real, 10 of the demo; the demo's
    model; bench/PRECISION.md): fp16 (its rounding run by CPU autocast) moved frame scores by at
    most 0.003; bf16 by up to 0.053, the most where scores are mid-range, and flipped 16 frames of
    one clip across 0.5. So a CPU, whatever its flags, scores in fp32 and gives one answer on
    every machine; bf16 (about 1.8x faster with AMX) is an opt-in with that bound."""
    return "fp16" if device.type == "cuda" else "fp32"


def resolve_precision(name: str, device: torch.device) -> str:
    if name == "auto":
        return scoring_precision(device)
    if name not in PRECISIONS:
        raise ConfigError(f"--precision {name!r}: choose auto, {', '.join(PRECISIONS)}")
    return name


class Compiled(torch.nn.Module):
    """`torch.compile` of a backbone (inductor; CUDA graphs on CUDA), falling back to the eager
    module, with one warning, when compilation is unavailable (no C++ compiler, no Triton) or fails.

    Compiled graphs are specialised to one input shape: Engine pads every batch to its full size.
    """

    def __init__(self, model: torch.nn.Module, device: torch.device):
        super().__init__()
        self.eager = model
        import torch._inductor.config  # only when compiling: importing inductor costs seconds

        # freezing: the weights become constants, which lets inductor prepack them for oneDNN on a CPU
        torch._inductor.config.freezing = True
        self.compiled = torch.compile(model, dynamic=False, mode="reduce-overhead" if device.type == "cuda" else None)
        self.failed: str | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.failed is None:
            try:
                return self.compiled(x)
            except Exception as exc:  # torch._dynamo / inductor raise many types; any of them means "not here"
                self.failed = first_line(exc)
                log.warning("warning: torch.compile failed (%s); running the network uncompiled", self.failed)
        return self.eager(x)

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.eager, name)  # e.g. Inception's logits: run eagerly


class Engine:
    """A loaded backbone that batches snippets from any number of videos.

    `head(model, x)` is what runs on a normalised batch: the features by default; `vad classify`
    asks for the logits. `compile` runs the network through torch.compile (Compiled).
    """

    def __init__(self, model: torch.nn.Module, spec: BackboneSpec, plan: SnippetPlan, device: torch.device,
                 batch_size: int, *, precision: str = "fp32", head: Callable | None = None, compile: bool = False):
        self.model, self.spec, self.plan, self.device = model, spec, plan, device
        self.batch_size, self.precision, self.dtype = batch_size, precision, PRECISIONS[precision]
        self.head = head or (lambda model, x: model(x))
        configure_backends(device, precision, batch_size)
        # None: the whole batch in one pass (GPUs want wide passes; a compiled graph wants one shape)
        self.clips_per_pass = CPU_CLIPS_PER_PASS if device.type == "cpu" and not compile else None
        self.compiled = compile
        if compile:
            self.model = Compiled(model, device)
        self.pending: list[tuple[int, int, torch.Tensor]] = []
        self.outputs: dict[int, dict[int, np.ndarray]] = {}
        self.network_s = 0.0
        self._staging: torch.Tensor | None = None  # pinned host buffer of one batch (CUDA only)

    # -- a stream of many videos -------------------------------------------------------------
    def run(self, events: Iterable[Event]) -> Iterator[Outcome]:
        """Outcomes of a snippet stream, each video's Finished as soon as its last snippet is through."""
        waiting: dict[int, dict] = {}  # decoded videos whose last snippets still wait in a batch
        started: set[int] = set()
        for event in events:
            if isinstance(event, Snippet):
                if event.video not in started:
                    started.add(event.video)
                    yield Started(event.video)
                through = self.add(event.video, event.index, event.crops)
                if through:
                    yield Through(through)
                    yield from self._finished(waiting)
            elif isinstance(event, Decoded):
                waiting[event.video] = event.meta
                yield from self._finished(waiting)  # its last snippets may have been through already
            elif isinstance(event, Failed):
                self.drop(event.video)
                yield event
            else:
                yield event
        through = self.flush()
        if through:
            yield Through(through)
        yield from self._finished(waiting)
        if waiting:  # every snippet of the stream has been through the network by now
            raise RuntimeError(f"vad bug: outputs of videos {sorted(waiting)} incomplete after the last batch")

    def _finished(self, waiting: dict[int, dict]) -> Iterator[Finished]:
        for video in [v for v, meta in waiting.items() if len(self.outputs.get(v, {})) == meta["n_snippets"]]:
            yield Finished(video, self.take(video), waiting.pop(video))

    # -- one video ------------------------------------------------------------------------------
    def video(self, path: Path, progress: bool = False, read_ahead: int = 0) -> tuple[np.ndarray, VideoSummary]:
        """[T, crops, D] outputs of one video; decode errors propagate as raised. `read_ahead` > 0
        decodes that many snippets ahead in a thread while the network runs."""
        summary = VideoSummary()
        snippets = iter_snippets(path, self.plan, summary)
        if read_ahead:
            snippets = decode_ahead(snippets, read_ahead)
        with progress_bar(desc=path.name, unit="snippet", disable=not progress) as bar:
            for index, snippet in enumerate(snippets):
                bar.update(self.add(0, index, snippet))
            bar.update(self.flush())
        return self.take(0), summary

    # -- batching -------------------------------------------------------------------------------
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
        """Queue one snippet; runs the network when a batch is full. Returns the snippets through."""
        if self.plan.geometry_on_device:  # whole frames: on their way to the device, cropped at flush()
            snippet = snippet.to(self.device, non_blocking=True)
        self.pending.append((video, index, snippet))
        return self.flush() if len(self.pending) >= self.batch_size else 0

    def _finish_on_device(self, frames: list[torch.Tensor]) -> list[torch.Tensor]:
        """Resize and crop the batch's whole-frame snippets, one call per frame size (videos of a
        batch may differ), so the kernel launches do not grow with the batch. A snippet whose frame
        size changes inside it comes already cropped (snippets.finish_frames): 5-D, kept as it is."""
        crops: list[torch.Tensor | None] = [f if f.dim() == 5 else None for f in frames]
        for shape in dict.fromkeys(tuple(f.shape) for f in frames if f.dim() != 5):
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
        if self.compiled and n_snippets < self.batch_size:  # a compiled graph has one batch shape: pad, drop the padding's outputs
            batch = torch.cat([batch, batch.new_zeros((self.batch_size - n_snippets, *batch.shape[1:]))])
        clips = batch.flatten(0, 1)
        step = self.clips_per_pass or len(clips)
        with torch.autocast(self.device.type, dtype=self.dtype, enabled=self.dtype is not None):
            out = torch.cat([self.head(self.model, self.spec.normalise(to_network_layout(clips[i:i + step]))).float()
                             for i in range(0, len(clips), step)])
        out = out.reshape(-1, n_crops, out.shape[-1])[:n_snippets].cpu().numpy()
        for (video, index, _), row in zip(self.pending, out):
            self.outputs.setdefault(video, {})[index] = row
        self.pending.clear()
        self.network_s += time.perf_counter() - started
        return n_snippets

    def take(self, video: int) -> np.ndarray:
        """[T, crops, D] of a video whose snippets have all been through the network."""
        parts = self.outputs.pop(video, {})
        return np.stack([parts[i] for i in range(len(parts))])

    def drop(self, video: int) -> None:
        self.pending = [p for p in self.pending if p[0] != video]
        self.outputs.pop(video, None)
