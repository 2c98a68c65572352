"""One raw video -> one frame-level anomaly curve (`vad score`).

decode -> 16-frame snippets -> the backbone and preprocessing recorded in the model file ->
detector -> score correction (docs/method.md (Score correction), on by default) -> frame curve: every frame gets its
snippet's score, exactly one value per decoded frame (docs/method.md (Evaluation)), time_s = frame / fps.

Snippets stream through the backbone, so memory holds the video's features ([T, crops, D]
float32: 8 KiB per snippet and crop for i3d-r50), never its frames. The model file is the only
source of the feature configuration: a backbone, feature size or weights file other than the
one the detector was trained on is refused (ScoreInputError), because its features would be
scored silently wrong.
"""
from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TextIO

import numpy as np
from PIL import Image

from vad import home
from vad import weights as weights_store
from vad.errors import RunFailure
from vad.extract.backbones import BackboneSpec, get_backbone
from vad.extract.cache import CONFIG_KEYS as CACHE_CONFIG_KEYS
from vad.extract.cache import FeatureCache
from vad.extract.decode import DECODERS, open_video
from vad.extract.engine import PRECISIONS, Engine, geometry_on_device, load_backbone, network_form, resolve_device, resolve_precision
from vad.extract.preprocess import CLIP_LEN
from vad.hardware import DEVICE_HELP, arithmetic, native_bf16
from vad.models.correction import correct_scores, video_level_score
from vad.models.detector import ARMSDetector
from vad.models.evaluate import frame_scores
from vad.models.inference import refuse_non_finite, score_video
from vad.models.io import load_model
from vad.pipeline.export import FORMATS, ExportConfig, Exported, read_export, runtime_export
from vad.pipeline.network import ScoreInputError, check_weights, feature_spec, model_feature, short, snippet_plan
from vad.pipeline.plot import Interval, intervals_above, plot_curve
from vad.runtimes import RUNTIMES, load_network, runtime_names
from vad.settings import setting

log = logging.getLogger("vad")

# The default model: the record in the user's data folder (<data>/default_model.json, which
# `vad demo` writes; vad.home), else, as older versions kept it, in each weights folder
# ($VAD_WEIGHTS_DIR, <data>/weights, the package's weights/): a pointer file {"model": PATH}
# (PATH relative to the pointer's folder), else a model file.
DEFAULT_MODEL_POINTER = "default_model.json"
DEFAULT_MODEL_FILE = "vad_default_model.pt"
THUMBNAIL_HEIGHT = 160  # pixels; thumbnails are small on the plot, so frames are kept small too


@dataclass
class ScoringNetwork:
    """The settings of every command that scores raw video (`vad score`, `vad watch`)."""

    model: Path | None = setting(None, "A model.pt from `vad train` or `vad demo`, or a folder from `vad export`.",
                                 default_text="the default model in the data folder (`vad info` shows it)")
    runtime: str = setting("auto", "What runs the backbone and the detector: torch, onnxruntime or openvino (optional extras: "
                                   "pip install 'vad[onnx]' or 'vad[openvino]'); a model.pt is exported once for the latter two "
                                   "(docs/export.md). auto: torch for a model.pt, the export's own runtime for an export folder.",
                           choices=lambda: ["auto", *runtime_names()])
    weights: Path | None = setting(None, "Backbone weights file; must be the weights the model was trained on.", path="file",
                                   default_text="resolved as `vad weights list` shows")
    allow_unverified_weights: bool = setting(False, "Accept backbone weights whose sha256 differs from the one the model file records "
                                                    "(and from the manifest).")
    correction: bool = setting(True, "Raw detector scores, without the score correction (docs/method.md, Score correction).",
                               negate=True)
    device: str = setting("auto", DEVICE_HELP)
    # auto = fp16 on CUDA, fp32 on every CPU (engine.scoring_precision gives the measured reasons)
    precision: str = setting("auto", "The backbone's precision. auto: fp16 on CUDA, fp32 on every CPU, so every CPU gives the same "
                                     "curve up to float rounding. bf16 is faster on CPUs with AMX but moves mid-range frame scores "
                                     "(bench/PRECISION.md); without AMX or AVX512-BF16 it is emulated and slower than fp32.",
                             choices=("auto", *PRECISIONS))
    exact: bool = setting(False, "Run the backbone exactly as its architecture is written, not its inference form (BatchNorm "
                                 "folded, 2-D convolutions of frames: the same features within 1e-5 of max|ref|, faster).")


@dataclass
class ScoreConfig(ScoringNetwork):
    batch_size: int = setting(4, "Snippets per backbone forward pass (each with the model's crops).", minimum=1)
    decoder: str = setting("auto", "auto: PyAV, falling back to decord per video.", choices=DECODERS)
    threshold: float | None = setting(None, "List the abnormal intervals: runs of frames scoring above it (start/end frame, end "
                                            "exclusive, and times); on stderr in csv mode, in the record in json mode. A report's "
                                            "slider starts at 0.5 without it.", minimum=0, maximum=1)


@dataclass
class Curve:
    """One video's frame-level anomaly curve and what is needed to read it."""

    path: Path
    fps: float
    n_frames: int
    partial: bool  # decoding stopped early; the curve covers the frames that decoded
    snippet_scores: np.ndarray  # [T] final snippet scores (corrected unless correction is off)
    frame_scores: np.ndarray  # [n_frames] one score in [0, 1] per decoded frame
    video_score: float  # the p of docs/method.md (Score correction) on the raw snippet scores
    provenance: dict  # what the scoring model was trained on (model.pt's provenance)
    source: dict | None = None  # scored from a feature cache: cache, video_id, the entry's precision and network
    computed: dict | None = None  # scored by a Ray actor: its precision and arithmetic (computed_by); None: this process's engine

    def times(self) -> np.ndarray:
        """Each frame's time in seconds: frame / fps."""
        return np.arange(self.n_frames) / self.fps

    def intervals(self, threshold: float) -> list[Interval]:
        """Runs of frames scoring above `threshold`, as end-exclusive [start, end) frame intervals."""
        return intervals_above(self.frame_scores, threshold)


@dataclass
class Scorer:
    """A loaded model with the extraction engine (backbone and preprocessing) its features came from."""

    config: ScoreConfig
    detector: ARMSDetector
    feature: dict  # payload["feature"] of the model file
    engine: Engine
    provenance: dict  # what the model was trained on (payload["provenance"]; empty for older files)
    exported: Exported | None = None  # the export folder whose networks config.runtime runs (None: torch runs the model.pt)

    @property
    def backbone_precision(self) -> str:
        """The backbone's arithmetic: the engine's (fp32, bf16, fp16), or an export's own (fp32, int8)."""
        if self.exported is not None:
            return self.exported.manifest["networks"]["backbone"].get("precision", "fp32")
        return self.engine.precision

    @property
    def network_form(self) -> str:
        """How the backbone runs: its inference form ("fast") or as written ("exact"), an export's as exported."""
        return self.exported.manifest["backbone"]["form"] if self.exported is not None else network_form(self.config.exact)

    @property
    def spec(self) -> BackboneSpec:
        return self.engine.spec

    def trained_on_generated_footage(self) -> bool:
        return bool(self.provenance.get("generated_footage"))

    def score(self, video: str | Path, progress: bool = False) -> Curve:
        """Score one video (DecodeError when it cannot be decoded at all; NonFiniteScores, before anything
        is written from them, when the model gives NaN or infinite scores)."""
        path = Path(video)
        features, summary = self.engine.video(path, progress=progress)
        return self.curve(features, path, summary.fps, summary.n_frames, summary.partial,
                          no_fps="the container gives no frame rate, so frame times are unknown")

    def curve(self, features: np.ndarray, path: Path, fps: float, n_frames: int, partial: bool, *,
              no_fps: str, source: dict | None = None) -> Curve:
        """Features [T, crops, D] -> the Curve: detector, score correction, one score per frame. The one step
        shared by raw videos (score) and feature caches (score_cached), so their curves cannot drift."""
        raw = refuse_non_finite(score_video(self.detector, features), path, self.config.model)
        snippet = correct_scores(raw) if self.config.correction else raw
        if not fps or fps <= 0:
            raise ScoreInputError(f"{path}: {no_fps}")
        return Curve(path, float(fps), n_frames, partial, snippet, frame_scores(snippet, n_frames), video_level_score(raw),
                     self.provenance, source)

    def score_cached(self, cache: FeatureCache, video_id: str) -> Curve:
        """Score one entry of a feature cache, without decoding (check_cache first): frame count, fps and
        partial come from its metadata. CacheError for a missing or corrupt entry; ScoreInputError for an
        entry without a frame rate or of pooled segments."""
        meta = cache.meta(video_id)
        features = cache.load(video_id)
        layout = cache.frame_layout(video_id, meta, features.shape[0])
        where = f"{cache.root}: entry {video_id!r}"
        if layout.pooled:
            raise ScoreInputError(f"{where} holds segments pooled over the whole video, not 16-frame snippets; score it with `vad eval`")
        source = {"cache": str(cache.root), "video_id": video_id, "precision": meta.get("precision"), "network": meta.get("network")}
        return self.curve(features, Path(video_id), meta.get("fps") or 0.0, layout.n_frames, bool(meta.get("partial")),
                          no_fps=f"{where} records no frame rate (imported features?), so frame times are unknown; "
                                 f"score it with `vad eval`, or re-extract the video with `vad extract`", source=source)

    def check_cache(self, cache: FeatureCache) -> None:
        """ScoreInputError, one line naming the model and the cache, when the cache's feature configuration is not
        the one the model was trained on (backbone, weights sha256, feature size, crops, snippet length, geometry, profile)."""
        config = cache.config
        model = {"profile": "reference", "short_side": 256, "crop_size": 224, "clip_len": CLIP_LEN, **self.feature}
        keys = [key for key in CACHE_CONFIG_KEYS if not (key == "weights_sha256" and self.config.allow_unverified_weights)]
        clashes = [f"{key}: model {short(model.get(key))}, cache {short(config.get(key))}" for key in keys if model.get(key) != config.get(key)]
        if clashes:
            raise ScoreInputError(f"the model {self.config.model} was trained on other features than the cache {cache.root} holds "
                                  f"({'; '.join(clashes)}); score a cache extracted with the model's settings")


    @classmethod
    def from_config(cls, config: ScoreConfig, backbone: bool = True) -> Scorer:
        """Load the model and the backbone it needs; ScoreInputError/ModelFileError/WeightsError on a mismatch.
        backbone=False: the detector only, for features from a cache (score_cached): no weights file is read.
        With --runtime onnxruntime or openvino both networks run from an export folder (pipeline/export.py)."""
        if config.model is None:
            config = replace(config, model=default_model_path())
        runtime = resolve_runtime(config.runtime, Path(config.model))
        config = replace(config, runtime=runtime)
        device = resolve_device(config.device)
        if runtime != "torch":
            return cls._from_export(config, device, backbone)
        precision = resolve_precision(config.precision, device)
        if precision == "bf16" and not native_bf16(device):
            log.warning("warning: --precision bf16 on %s: no bf16 hardware (AMX, AVX512-BF16) here, so it is emulated and "
                        "slower than fp32; scores also move by up to 0.053. Use --precision auto", device)
        detector, payload = load_model(config.model, device)
        feature = model_feature(payload, Path(config.model))
        spec = feature_spec(feature, detector.config.feature_dim, Path(config.model))
        network = None
        if backbone:
            weights = check_weights(spec, feature, Path(config.model), config.weights, config.allow_unverified_weights)
            network, _ = load_backbone(spec, weights, device, allow_unverified=config.allow_unverified_weights, exact=config.exact)
        plan = snippet_plan(spec, feature, config.decoder, geometry_on_device("auto", device))
        log.debug("model %s: %s features, %d crop(s), profile %s, device %s, precision %s, %s network", config.model, spec.name, plan.crops,
                  feature.get("profile", "reference"), device, precision, network_form(config.exact))
        provenance = payload.get("provenance") if isinstance(payload.get("provenance"), dict) else {}
        return cls(config, detector, feature, Engine(network, spec, plan, device, config.batch_size, precision=precision), provenance)

    @classmethod
    def _from_export(cls, config: ScoreConfig, device, backbone: bool) -> Scorer:
        """Both networks from an export folder (a model.pt is exported once, into the data folder), run by config.runtime."""
        if config.precision not in ("auto", "fp32"):
            raise ScoreInputError(f"--precision {config.precision}: --runtime {config.runtime} runs an export in the precision it "
                                  f"was exported in (fp32, or an int8 backbone); leave --precision at auto")
        fmt = next(iter(RUNTIMES[config.runtime].formats))
        model = Path(config.model)
        if model.is_dir():
            exported = read_export(model)
            if exported.format not in RUNTIMES[config.runtime].formats:
                raise ScoreInputError(f"{model}: a {exported.format} export, which --runtime {config.runtime} cannot run; use "
                                      f"--runtime {FORMATS[exported.format]}")
        else:
            exported = runtime_export(model, fmt, ExportConfig(weights=config.weights, exact=config.exact,
                                                               allow_unverified_weights=config.allow_unverified_weights))
        feature = exported.feature
        spec = get_backbone(exported.manifest["backbone"]["name"])
        if backbone and config.weights is not None and model.is_dir():  # a model.pt's export was made from --weights
            log.warning("warning: --weights is not read: the export %s holds the backbone's weights", exported.root)
        network = load_network(config.runtime, exported.path("backbone"), device) if backbone else None
        detector = load_network(config.runtime, exported.path("detector"), device)
        plan = snippet_plan(spec, feature, config.decoder, geometry_on_device("auto", device))
        log.debug("export %s: %s features, %d crop(s), runtime %s", exported.root, spec.name, plan.crops, config.runtime)
        return cls(config, detector, feature, Engine(network, spec, plan, device, config.batch_size), exported.provenance, exported)


def resolve_runtime(name: str, model: Path) -> str:
    """--runtime auto: torch for a model.pt, the export's own runtime for an export folder."""
    if name != "auto":
        if name == "torch" and model.is_dir():
            raise ScoreInputError(f"{model}: an export folder runs with --runtime onnxruntime or openvino (or auto), not torch")
        return name
    if not model.is_dir():
        return "torch"
    return FORMATS[read_export(model, verify=False).format]


def default_model_path() -> Path:
    """The model `vad score` uses without --model, or ScoreInputError saying how to get one.

    The data folder's record wins: it is the user's own (a shared install's weights folder may
    hold an administrator's pointer or model file, which is the fallback)."""
    places = [home.default_model_record()]
    places += [folder / name for folder in weights_store.search_dirs() for name in (DEFAULT_MODEL_POINTER, DEFAULT_MODEL_FILE)]
    for place in places:
        if not place.is_file():
            continue
        if place.name == DEFAULT_MODEL_FILE:
            return place
        try:
            target = Path(json.loads(place.read_text())["model"]).expanduser()
        except (ValueError, KeyError, TypeError) as exc:
            raise ScoreInputError(f"{place}: expected {{\"model\": PATH}} ({type(exc).__name__})") from None
        target = target if target.is_absolute() else place.parent / target
        if not target.is_file():
            raise ScoreInputError(f"{place} names {target}, which does not exist; pass --model PATH or rerun `vad demo`")
        return target
    looked = ", ".join(str(place) for place in places)
    raise ScoreInputError(f"no default model (looked for {looked}); pass --model PATH, or make one with `vad demo` or `vad train`")


def generated_footage_warning(scorer: Scorer) -> str:
    """The one line `vad score` prints for a model trained by `vad demo` on its generated clips."""
    p = scorer.provenance
    return (f"warning: {scorer.config.model} was trained by `vad demo` on generated cartoon footage "
            f"({p.get('train_videos', {}).get('total', '?')} clips), not on real surveillance video: its scores on real footage "
            f"mean little. Train on your own: `vad extract VIDEOS --cache CACHE`, then `vad train --cache CACHE --labels labels.csv "
            f"--out run`, and score with `--model run/model.pt`")


def gt_for_video(gt: dict[str, list[Interval]], video: Path) -> list[Interval]:
    """The ground-truth intervals whose video id names this file: the id is the path's last parts
    without the suffix (`abnormal/fight_002` matches `.../abnormal/fight_002.mp4`); the longest wins."""
    parts = video.with_suffix("").parts
    matches = [video_id for video_id in gt if tuple(Path(video_id).parts) == parts[-len(Path(video_id).parts):]]
    return gt[max(matches, key=len)] if matches else []


def write_csv(result: Curve, handle: TextIO) -> None:
    """`frame,time_s,score`, one row per decoded frame."""
    writer = csv.writer(handle, lineterminator="\n")
    writer.writerow(["frame", "time_s", "score"])
    for frame, (time_s, score) in enumerate(zip(result.times(), result.frame_scores)):
        writer.writerow([frame, f"{time_s:.6f}", f"{score:.6f}"])


def interval_records(result: Curve, threshold: float) -> list[dict]:
    """Intervals with frames [start, end) and their times (end_s = end_frame / fps)."""
    return [{"start_frame": s, "end_frame": e, "start_s": round(s / result.fps, 6), "end_s": round(e / result.fps, 6),
             "max_score": round(float(result.frame_scores[s:e].max()), 6)} for s, e in result.intervals(threshold)]


def computed_by(scorer: Scorer) -> dict:
    """The backbone's precision and how the scores were computed (device, threads...) by this process's engine:
    the detector runs in fp32 and the correction in fp64 on every device."""
    precision = scorer.backbone_precision
    return {"precision": precision, "runtime": scorer.config.runtime,
            "arithmetic": arithmetic(scorer.engine.device, backbone=precision, detector="fp32", correction="fp64")}


def as_json(result: Curve, scorer: Scorer) -> dict:
    config = scorer.config
    source = result.source
    computed = None if source else (result.computed or computed_by(scorer))
    return {
        "video": str(result.path),
        "model": str(config.model),
        "provenance": scorer.provenance,
        "backbone": scorer.spec.name,
        "crops": scorer.engine.plan.crops,
        **({"cache": source["cache"], "video_id": source["video_id"]} if source else {}),
        "precision": source["precision"] if source else computed["precision"],
        "runtime": config.runtime,
        "network": source["network"] if source else scorer.network_form,
        # how these scores were computed: the detector runs in fp32 and the correction in fp64 on every device
        # (from a cache: the backbone's precision is the one the entry records, on the device that extracted it;
        # by a Ray actor: its own device, precision and threads)
        "arithmetic": arithmetic(scorer.engine.device, backbone=str(source["precision"]), detector="fp32", correction="fp64")
                      if source else computed["arithmetic"],
        "correction": config.correction,
        "fps": result.fps,
        "n_frames": result.n_frames,
        "n_snippets": len(result.snippet_scores),
        "partial": result.partial,
        # mean of the top-k raw snippet scores, k = floor(T/16)+1 (the p of docs/method.md (Score correction))
        "video_score": round(result.video_score, 6),
        "max_score": round(float(result.frame_scores.max()), 6),
        "threshold": config.threshold,
        "intervals": interval_records(result, config.threshold) if config.threshold is not None else None,
        "snippet_scores": [round(float(s), 6) for s in result.snippet_scores],
        "scores": [round(float(s), 6) for s in result.frame_scores],
    }


def curve_text(result: Curve, scorer: Scorer, output_format: str) -> tuple[str, list[str]]:
    """The curve as `vad score` writes it (csv or json), and the interval lines that csv mode
    prints on stderr when a threshold is set (json mode carries them in the record)."""
    if output_format == "json":
        return json.dumps(as_json(result, scorer)) + "\n", []
    buffer = io.StringIO()
    write_csv(result, buffer)
    threshold = scorer.config.threshold
    return buffer.getvalue(), [] if threshold is None else describe_intervals(result, threshold)


def describe_intervals(result: Curve, threshold: float) -> list[str]:
    """Human-readable interval lines (stderr in CSV mode, so the CSV stays pure)."""
    records = interval_records(result, threshold)
    if not records:
        return [f"{result.path}: no frame scores above {threshold:g}"]
    return [f"{result.path}: abnormal frames {r['start_frame']}-{r['end_frame'] - 1} ({r['start_s']:.2f}-{r['end_s']:.2f} s, "
            f"max {r['max_score']:.3f})" for r in records]


def thumbnail_source(path: Path, decoder: str) -> Callable[[list[int]], list[np.ndarray]]:
    """Frames by index, decoded again in one streaming pass and shrunk (the scoring pass keeps none)."""

    def frames_at(indices: list[int]) -> list[np.ndarray]:
        wanted = set(indices)
        found: dict[int, np.ndarray] = {}
        for index, frame in enumerate(open_video(path, decoder)):
            if index in wanted:
                image = Image.fromarray(frame)
                width = max(1, round(image.width * THUMBNAIL_HEIGHT / image.height))
                found[index] = np.asarray(image.resize((width, THUMBNAIL_HEIGHT), Image.BILINEAR))
                if len(found) == len(wanted):
                    break
        last = found[max(found)] if found else np.zeros((THUMBNAIL_HEIGHT, THUMBNAIL_HEIGHT, 3), np.uint8)
        return [found.get(i, last) for i in indices]  # a re-decode that stops short reuses the last frame it got

    return frames_at


def plot_scores(result: Curve, scorer: Scorer, png: Path, gt_intervals: list[Interval] | None = None) -> Path:
    config = scorer.config
    title = f"{result.path.name}: {scorer.spec.name}, correction {'on' if config.correction else 'off'}, video score {result.video_score:.2f}"
    if scorer.trained_on_generated_footage():
        title += " (demo model)"
    intervals = result.intervals(config.threshold) if config.threshold is not None else None
    try:
        return plot_curve(png, result.frame_scores, result.fps, threshold=config.threshold, intervals=intervals, gt_intervals=gt_intervals,
                          thumbnails=thumbnail_source(result.path, config.decoder), title=title)
    except OSError as exc:
        raise RunFailure(f"{png}: cannot write the plot ({exc.strerror or exc})") from None
