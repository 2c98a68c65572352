"""An int8 backbone for OpenVINO, calibrated on the user's own footage (`vad export --int8`).

NNCF's post-training quantization needs inputs like the ones the network will see: snippets
of the user's videos, decoded and cropped exactly as scoring does (the model's snippet plan).
`--snippets` of them (300) calibrate; `--held-out` more (50), never seen by the calibration,
measure what int8 costs: the cosine and max abs difference of their features against the fp32
network, and the max abs difference of detector scores computed from each. Both sets are drawn
evenly from the videos (a seeded reservoir per video, so long videos are sampled over their
whole length) and kept in a memory-mapped file, not in memory.
"""
from __future__ import annotations

import contextlib
import io
import logging
import math
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from vad.errors import ConfigError, VadError
from vad.extract.backbones import BackboneSpec
from vad.extract.cache import FeatureCache
from vad.extract.engine import geometry_on_device
from vad.extract.inputs import discover
from vad.extract.preprocess import to_network_layout
from vad.extract.snippets import VideoSummary, iter_snippets
from vad.models.detector import ARMSDetector
from vad.models.inference import score_video
from vad.pipeline.common import quiet_loggers
from vad.pipeline.network import snippet_plan
from vad.progress import progress_bar
from vad.runtimes import load_network

log = logging.getLogger("vad")

# NNCF's default, fast bias correction left the demo's Inception-I3D features 14% longer than fp32
# (held-out cosine 0.992) and lifted every score by about 0.13; the full bias correction (a
# sub-graph statistics pass per layer) brings the length to 0.993-0.998 of fp32 and the cosine to 0.998
# at the same int8 speed (bench/RUNTIMES.md, "int8 accuracy on the demo").
FAST_BIAS_CORRECTION = False
# Held-out scores that int8 moves further than this (max abs) or shifts on average (mean, signed)
# get a warning: thresholds and alert rules set on fp32 scores no longer mean the same.
SCORE_MOVE_WARNING, SCORE_SHIFT_WARNING = 0.1, 0.02


def calibration_videos(sources: tuple[Path, ...]) -> list[Path]:
    """The videos of --calibrate: files, folders of videos (recursive), and feature caches, whose
    entries name their source videos (those that no longer exist are skipped with a warning)."""
    videos: list[Path] = []
    for source in sources:
        source = Path(source)
        if (source / "cache.json").is_file():
            cache = FeatureCache(source)
            for video_id in cache.video_ids():
                path = cache.meta(video_id).get("source")
                if path and Path(path).is_file():
                    videos.append(Path(path))
                else:
                    log.warning("warning: %s: entry %r names no video that exists here (%s); skipped", source, video_id, path)
        else:
            videos += [item.path for item in discover([str(source)])]
    if not videos:
        raise ConfigError(f"--calibrate {' '.join(map(str, sources))}: no videos to calibrate on")
    return list(dict.fromkeys(videos))


def sample_clips(videos: list[Path], spec: BackboneSpec, feature: dict, count: int, seed: int, work: Path, *,
                 progress: bool = True) -> tuple[np.memmap, list[tuple[int, int]]]:
    """`count` clips (one crop of a snippet each, crops taken in turn) drawn evenly from `videos`:
    uint8 [n, clip_len, crop, crop, 3] in a file under `work`, and each clip's (video, snippet)."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(videos))
    per_video = math.ceil(count / len(videos))
    plan = snippet_plan(spec, feature, "auto", geometry_on_device("auto", torch.device("cpu")))
    crop = plan.geometry.crop_size
    clips = np.lib.format.open_memmap(work / "clips.npy", mode="w+", dtype=np.uint8,
                                      shape=(count, plan.geometry.clip_len, crop, crop, 3))
    owners: list[tuple[int, int]] = []
    bar = progress_bar(total=count, desc="calibration snippets", unit="snippet", disable=not progress)
    for number in order:
        if len(owners) >= count:
            break
        quota = min(per_video, count - len(owners))
        first = len(owners)
        slots: list[tuple[int, int]] = []  # reservoir sampling: every snippet of the video equally likely
        try:
            for index, snippet in enumerate(iter_snippets(videos[number], plan, VideoSummary())):
                slot = len(slots) if len(slots) < quota else int(rng.integers(index + 1))
                if slot < quota:
                    clips[first + slot] = snippet[index % snippet.shape[0]].numpy()
                    if slot == len(slots):
                        slots.append((int(number), index))
                    else:
                        slots[slot] = (int(number), index)
        except VadError as exc:
            log.warning("warning: %s: %s; calibrating on the other videos", videos[number], exc)
        except Exception as exc:  # a broken video must not stop the calibration
            log.warning("warning: %s: cannot decode (%s); calibrating on the other videos", videos[number], exc)
        owners += slots
        bar.update(len(slots))
    bar.close()
    if not owners:
        raise ConfigError("--calibrate: none of the videos gave a snippet")
    return clips, owners


def quantize_backbone(xml: Path, detector: ARMSDetector, spec: BackboneSpec, feature: dict, config, *,
                      progress: bool = True) -> dict:
    """Replace the fp32 OpenVINO backbone `xml` (with its .bin) by its int8 quantization; returns what
    vad-export.json records: precision, the calibration set and the deviation on the held-out snippets."""
    try:
        with quiet_loggers("torch.utils.cpp_extension"):  # NNCF's import looks for CUDA and says so
            import nncf
        import openvino as ov
    except ImportError:
        raise ConfigError("--int8 needs NNCF and OpenVINO: pip install 'vad[openvino]'") from None
    videos = calibration_videos(config.calibrate)
    with tempfile.TemporaryDirectory(dir=xml.parent) as scratch:
        clips, owners = sample_clips(videos, spec, feature, config.snippets + config.held_out, config.seed, Path(scratch), progress=progress)
        n = len(owners)
        held = np.zeros(n, dtype=bool)
        held[np.random.default_rng([config.seed, 1]).choice(n, size=min(config.held_out, max(n // 6, 1)), replace=False)] = True
        if n < config.snippets + config.held_out:
            log.warning("warning: the --calibrate videos hold %d snippets, fewer than the %d asked for (--snippets %d + --held-out %d); "
                        "calibrating on %d and measuring on %d", n, config.snippets + config.held_out, config.snippets, config.held_out,
                        int((~held).sum()), int(held.sum()))

        def network_input(index: int) -> np.ndarray:
            return spec.normalise(to_network_layout(torch.from_numpy(np.array(clips[index]))[None])).numpy()

        calibration = [int(i) for i in np.flatnonzero(~held)]
        fp32 = ov.Core().read_model(str(xml))
        log.info("quantizing the backbone to int8 on %d snippets of %d videos (NNCF)", len(calibration), len({owners[i][0] for i in calibration}))
        # NNCF draws its progress bars (rich) on stdout, which carries vad export's JSON summary: onto
        # stderr, or nowhere when progress is off (-q, not a terminal)
        with contextlib.redirect_stdout(sys.stderr if progress else io.StringIO()):
            quantized = nncf.quantize(fp32, nncf.Dataset(calibration, network_input), subset_size=len(calibration),
                                      fast_bias_correction=FAST_BIAS_CORRECTION)
        int8_path = xml.with_name("backbone-int8.xml")
        ov.save_model(quantized, int8_path, compress_to_fp16=False)
        deviation = held_out_deviation(load_network("openvino", xml, torch.device("cpu")),
                                       load_network("openvino", int8_path, torch.device("cpu")), detector,
                                       [network_input(int(i)) for i in np.flatnonzero(held)], [owners[i] for i in np.flatnonzero(held)])
    for suffix in (".xml", ".bin"):
        int8_path.with_suffix(suffix).replace(xml.with_suffix(suffix))
    if deviation["score_max_abs"] > SCORE_MOVE_WARNING or abs(deviation["score_mean_shift"]) > SCORE_SHIFT_WARNING:
        log.warning("warning: on %d held-out snippets the int8 backbone moves the detector's scores by up to %.3f (mean shift %+.3f): "
                    "rankings may hold, but a threshold chosen on fp32 scores does not carry over; choose it again on int8 scores, "
                    "or calibrate on more of your footage (--snippets)", deviation["snippets"], deviation["score_max_abs"],
                    deviation["score_mean_shift"])
    return {
        "precision": "int8",
        "quantization": {"tool": f"nncf {nncf.__version__}", "method": "post-training quantization (nncf.quantize, default preset, "
                                                                       f"fast_bias_correction={FAST_BIAS_CORRECTION})"},
        "calibration": {"videos": [str(v) for v in videos], "snippets": len(calibration), "held_out": int(held.sum()),
                        "seed": config.seed, "per_video_snippets": _most_per_video(owners, ~held)},
        "deviation": deviation,
    }


def _most_per_video(owners: list[tuple[int, int]], mask: np.ndarray) -> int:
    """The most snippets any one video gave (how evenly the set spreads)."""
    counts: dict[int, int] = {}
    for (video, _), keep in zip(owners, mask):
        if keep:
            counts[video] = counts.get(video, 0) + 1
    return max(counts.values()) if counts else 0


def held_out_deviation(fp32, int8, detector: ARMSDetector, inputs: list[np.ndarray], owners: list[tuple[int, int]]) -> dict:
    """int8 against fp32 on held-out clips: features (cosine mean and minimum, max abs, max abs relative
    to max|fp32|, the mean ratio of their L2 norms) and detector scores (each video's held-out snippets
    in time order, scored as one sequence from either feature set): the max abs difference, and the mean
    signed one, which shows a systematic shift (int8 scores higher or lower throughout) that moves
    every threshold set on fp32 scores, however well the ranking is kept."""
    with torch.no_grad():
        a = np.concatenate([fp32(torch.from_numpy(x)).numpy() for x in inputs])
        b = np.concatenate([int8(torch.from_numpy(x)).numpy() for x in inputs])
    norms = np.maximum(np.linalg.norm(a, axis=1), 1e-12)
    cosine = (a * b).sum(1) / np.maximum(norms * np.linalg.norm(b, axis=1), 1e-12)
    shifts = []
    for video in sorted({v for v, _ in owners}):
        rows = sorted((index, row) for row, (v, index) in enumerate(owners) if v == video)
        take = [row for _, row in rows]
        sa, sb = (score_video(detector, f[take][:, None, :]) for f in (a, b))
        shifts.append(sb - sa)
    shift = np.concatenate(shifts)
    return {"snippets": len(inputs), "feature_cosine_mean": float(cosine.mean()), "feature_cosine_min": float(cosine.min()),
            "feature_max_abs": float(np.abs(a - b).max()), "feature_max_abs_relative": float(np.abs(a - b).max() / max(np.abs(a).max(), 1e-12)),
            "feature_norm_ratio_mean": float((np.linalg.norm(b, axis=1) / norms).mean()),
            "score_max_abs": float(np.abs(shift).max()), "score_mean_shift": float(shift.mean())}
