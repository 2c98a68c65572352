"""`vad export`: a trained model as ONNX or OpenVINO files that run without vad (docs/export.md).

    MODEL.pt -> DIR/
      backbone.onnx    | backbone.xml + .bin     clips [n, 3, 16, crop, crop] float32, normalised -> features [n, D]
      detector.onnx    | detector.xml + .bin     features [videos, snippets, D] -> scores [videos, snippets] in [0, 1]
      correction.onnx  | correction.xml + .bin   scores [snippets] -> corrected [snippets], video_score []
      vad-export.json                            how to run them (preprocessing, names, shapes, sha256s, provenance)

The backbone is exported in its inference form (the form `vad score` runs), or as the plain
network when the inference form does not export or `--exact` asks for it. Every exported float
network is run once by its runtime on a random input and must match PyTorch within
EXPORT_TOLERANCE of max|ref|; the deviations are recorded. Batch and snippet axes are dynamic.
An int8 backbone (--int8, OpenVINO) is quantized from the user's own footage (pipeline/quantize.py).

The folder is written next to DIR and renamed into place, so DIR is either a whole export or absent.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch
from torch import nn

from vad import home
from vad.errors import ConfigError, RunFailure, VadError
from vad.extract.backbones import BackboneSpec
from vad.extract.engine import load_backbone, network_form
from vad.files import atomic_write_json, temporary_prefix
from vad.models.io import load_model, read_model_file
from vad.pipeline.common import quiet_loggers
from vad.pipeline.network import check_weights, feature_spec, model_feature
from vad.runtimes import RUNTIMES, RuntimeMissing, load_network
from vad.settings import setting
from vad.weights import sha256_file

log = logging.getLogger("vad")

EXPORT_FILE = "vad-export.json"
EXPORT_KIND = "vad-export"
EXPORT_FORMAT = 1
FORMATS = {"onnx": "onnxruntime", "openvino": "openvino"}  # format -> the runtime that checks it
OPSET = 18
# An exported float network against PyTorch on a random input, relative to max|ref| (measured:
# 2e-6 for both backbones in onnxruntime and OpenVINO fp32, 1e-6 for the detector).
EXPORT_TOLERANCE = 1e-4
NETWORKS = ("backbone", "detector", "correction")


class ExportError(VadError):
    """An export folder that cannot be read or used; the message names the folder and the fix."""


@dataclass(frozen=True)
class ExportConfig:
    """The settings of `vad export` (its options are generated from these)."""

    format: str = setting("onnx", "onnx: for onnxruntime (CPU, CUDA) and TensorRT; openvino: OpenVINO IR for Intel CPUs, int8 "
                                  "backbones included.", choices=tuple(FORMATS))
    weights: Path | None = setting(None, "Backbone weights file; must be the weights the model was trained on.", path="file",
                                   default_text="resolved as `vad weights list` shows")
    allow_unverified_weights: bool = setting(False, "Accept backbone weights whose sha256 differs from the one the model file "
                                                    "records.")
    exact: bool = setting(False, "Export the backbone as its architecture is written, not its inference form (BatchNorm folded, "
                                 "2-D convolutions of frames).")
    int8: bool = setting(False, "Quantize the backbone to int8 with NNCF from snippets of --calibrate footage (--format "
                                "openvino); the export records the measured deviation (bench/RUNTIMES.md).")
    calibrate: tuple[Path, ...] = setting((), "Videos, folders of videos or feature caches (their source videos) to calibrate "
                                              "int8 from.", cli=False)
    snippets: int = setting(300, "Calibration snippets for --int8, drawn evenly from the --calibrate videos.", minimum=1)
    held_out: int = setting(50, "Further snippets, not used to calibrate, on which the int8 backbone is measured.", minimum=1)
    seed: int = setting(0, "Seeds which snippets calibrate and which are held out.")
    overwrite: bool = setting(False, "Replace an existing export in --out.")


@dataclass
class Exported:
    """An export folder read back: its manifest and the paths of its networks."""

    root: Path
    manifest: dict

    def path(self, network: str) -> Path:
        return self.root / self.manifest["networks"][network]["file"]

    @property
    def format(self) -> str:
        return self.manifest["format"]

    @property
    def feature(self) -> dict:
        return self.manifest["feature"]

    @property
    def provenance(self) -> dict:
        return self.manifest.get("provenance") or {}


# -- the networks as exported ---------------------------------------------------------------------
class Correction(nn.Module):
    """The score correction as a network (models/correction.py, in float32): s~ = sqrt(s * p), p the
    mean of the top k = floor(T/16) + 1 scores, the video score."""

    def forward(self, scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        k = scores.shape[0] // 16 + 1
        p = torch.topk(scores, k).values.mean()
        return torch.sqrt(scores * p), p


def _example(network: str, spec: BackboneSpec, feature: dict) -> tuple[torch.Tensor, dict]:
    """An input of the network's shape and its dynamic axes. Example sizes are 2 and more: torch.export
    specialises axes whose example size is 1."""
    dim = torch.export.Dim
    if network == "backbone":
        crop = feature.get("crop_size", 224)
        return torch.randn(2, 3, spec.geometry.clip_len, crop, crop), {0: dim("clips", min=1, max=1 << 16)}
    if network == "detector":
        return torch.rand(2, 37, spec.feature_dim) * 2, {0: dim("videos", min=1, max=1 << 16), 1: dim("snippets", min=1, max=1 << 20)}
    return torch.rand(40), {0: dim("snippets", min=1, max=1 << 20)}


IO_NAMES = {"backbone": (["clips"], ["features"]), "detector": (["features"], ["scores"]),
            "correction": (["scores"], ["corrected", "video_score"])}


def _to_onnx(module: nn.Module, example: torch.Tensor, axes: dict, network: str, path: Path) -> None:
    """torch.onnx.export (the torch.export-based exporter), weights inside the one file; its progress
    lines and warnings go to the debug log, not the user's terminal."""
    inputs, outputs = IO_NAMES[network]
    printed = io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(printed), quiet_loggers("onnxscript", "onnx_ir", "torch.onnx"):
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (example,), str(path), input_names=inputs, output_names=outputs, dynamic_shapes=(axes,),
                          dynamo=True, opset_version=OPSET, external_data=False, verbose=False)
    log.debug("%s", printed.getvalue())


def _require_exporter(fmt: str) -> None:
    for package in ("onnx", "onnxscript"):
        try:
            __import__(package)
        except ImportError:
            raise RuntimeMissing(f"vad export needs the {package} package, which is not installed: "
                                 f"pip install 'vad[{RUNTIMES[FORMATS[fmt]].extra}]'") from None
    RUNTIMES[FORMATS[fmt]].require()


def _write_network(module: nn.Module, network: str, fmt: str, spec: BackboneSpec, feature: dict, folder: Path) -> Path:
    """One network into `folder` in `fmt`: the file that runs it (backbone.onnx, or backbone.xml beside its .bin)."""
    example, axes = _example(network, spec, feature)
    onnx_path = folder / f"{network}.onnx"
    _to_onnx(module, example, axes, network, onnx_path)
    if fmt == "onnx":
        return onnx_path
    import openvino as ov

    xml = folder / f"{network}.xml"
    ov.save_model(ov.convert_model(onnx_path), xml, compress_to_fp16=False)  # fp32 weights: fp16 would move scores
    onnx_path.unlink()
    return xml


def check_network(module: nn.Module, network: str, path: Path, fmt: str, spec: BackboneSpec, feature: dict) -> dict:
    """Run the exported file with its runtime on a random input (of another batch size than the example) and
    compare with PyTorch: {"max_abs", "max_ref", "relative"}; ExportError past EXPORT_TOLERANCE."""
    example, _ = _example(network, spec, feature)
    x = example[:1] if network == "backbone" else example.repeat(*(2, 2, 1) if network == "detector" else (3,))
    with torch.no_grad():
        reference = module(x)
    reference = (reference[0] if isinstance(reference, tuple) else reference).float().numpy()
    runtime = FORMATS[fmt]
    out = load_network(runtime, path, torch.device("cpu"))(x).numpy()
    max_abs, max_ref = float(np.abs(out - reference).max()), float(np.abs(reference).max())
    relative = max_abs / max(max_ref, 1e-12)
    if not relative <= EXPORT_TOLERANCE:
        raise ExportError(f"{path.name}: {runtime} gives outputs {relative:.1e} of max|ref| away from PyTorch's (tolerance "
                          f"{EXPORT_TOLERANCE:g}); this network does not export faithfully to {fmt}")
    return {"runtime": runtime, "max_abs": max_abs, "max_ref": max_ref, "relative": relative}


# -- the manifest ---------------------------------------------------------------------------------
def preprocessing(spec: BackboneSpec, feature: dict) -> dict:
    """How a video becomes the backbone's input, in words and numbers (docs/formats.md, "vad-export.json")."""
    crop = feature.get("crop_size", 224)
    profile = feature.get("profile", "reference")
    scale, offset = spec.affine
    return {
        "clip_len": spec.geometry.clip_len,
        "snippets": f"frames 16t..16t+15 form snippet t; the last snippet is padded by repeating the last decoded frame; "
                    f"T = ceil(frames / {spec.geometry.clip_len})",
        "jpeg_quality": spec.jpeg_quality(profile),
        "jpeg": "when jpeg_quality is set, every decoded RGB frame is JPEG-encoded (4:2:0) at that quality and decoded "
                "again before resizing (the reference extractor's round trip)",
        "short_side": feature.get("short_side", 256),
        "resize": "Pillow bilinear resize of the uint8 RGB frame so that its shorter side is short_side; the longer side is "
                  "int(short_side * long / short)",
        "crop_size": crop,
        "crops": feature["crops"],
        "crop_order": "1: the centre crop (top round((H - crop) / 2), left round((W - crop) / 2), half to even); 10: top-left, "
                      "top-right, bottom-left, bottom-right, centre, then the same five boxes on the horizontally flipped frames",
        "normalisation": {"scale": scale, "offset": offset, "formula": "x = v * scale + offset, v the 0..255 RGB value",
                          "reference": spec.normalisation},
        "layout": "clips [n, 3 (RGB), clip_len, crop, crop]: one crop of one snippet per row",
        "scores": "score each crop's sequence of snippet features with the detector ([crops, T, D] -> [crops, T]) and average "
                  "over crops; then the correction; every frame takes its snippet's score",
    }


def _manifest(model: Path, payload: dict, spec: BackboneSpec, feature: dict, fmt: str, networks: dict, *, form: str) -> dict:
    dim = spec.feature_dim
    crop = feature.get("crop_size", 224)
    shapes = {
        "backbone": ({"clips": ["n", 3, spec.geometry.clip_len, crop, crop]}, {"features": ["n", dim]}),
        "detector": ({"features": ["videos", "snippets", dim]}, {"scores": ["videos", "snippets"]}),
        "correction": ({"scores": ["snippets"]}, {"corrected": ["snippets"], "video_score": []}),
    }
    return {
        "kind": EXPORT_KIND, "export_format": EXPORT_FORMAT, "format": fmt, "vad_version": home.installed_version(),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "model": {"file": model.name, "sha256": sha256_file(model), "phase": payload.get("phase"), "iteration": payload.get("iteration")},
        "provenance": payload.get("provenance") if isinstance(payload.get("provenance"), dict) else {},
        "backbone": {"name": spec.name, "weights_sha256": feature.get("weights_sha256"), "feature_dim": dim, "form": form},
        "feature": feature,
        "preprocessing": preprocessing(spec, feature),
        "networks": {name: {**networks[name], "inputs": shapes[name][0], "outputs": shapes[name][1]} for name in NETWORKS},
        "correction_default": True,
    }


def _file_digest(path: Path) -> str:
    """sha256 of the network's files (an OpenVINO .xml with its .bin)."""
    digest = hashlib.sha256()
    for part in [path] + ([path.with_suffix(".bin")] if path.suffix == ".xml" else []):
        digest.update(bytes.fromhex(sha256_file(part)))
    return digest.hexdigest()


# -- export ---------------------------------------------------------------------------------------
def export_model(model: Path, out: Path, config: ExportConfig, progress: bool = True) -> Exported:
    """Export `model` (a model.pt) into the folder `out`; returns it read back."""
    model, out = Path(model), Path(out)
    if config.int8 and config.format != "openvino":
        raise ConfigError("--int8 quantizes with NNCF for OpenVINO: add --format openvino")
    if config.int8 and not config.calibrate:
        raise ConfigError("--int8 needs footage to calibrate on: --calibrate VIDEO_OR_FOLDER_OR_CACHE (300 snippets by default)")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: a file is there; an export is a folder")
    if out.is_dir() and any(out.iterdir()) and not config.overwrite:
        raise ConfigError(f"--out {out}: the folder is not empty; pass --overwrite to replace what is there, or another --out")
    _require_exporter(config.format)
    detector, payload = load_model(model, "cpu")
    feature = model_feature(payload, model)
    spec = feature_spec(feature, detector.config.feature_dim, model)
    weights = check_weights(spec, feature, model, config.weights, config.allow_unverified_weights)
    backbone, _ = load_backbone(spec, weights, torch.device("cpu"), allow_unverified=config.allow_unverified_weights, exact=config.exact)
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=out.parent, prefix=temporary_prefix(out)))
    try:
        networks, form = {}, network_form(config.exact)
        modules = {"backbone": backbone, "detector": detector.eval(), "correction": Correction()}
        for name in NETWORKS:
            log.info("exporting the %s to %s", name, config.format)
            try:
                path = _write_network(modules[name], name, config.format, spec, feature, work)
            except Exception as exc:  # torch.export and the converters raise many types
                if name != "backbone" or config.exact:
                    raise RunFailure(f"{model}: the {name} does not export to {config.format} ({type(exc).__name__}: "
                                     f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
                log.warning("warning: the backbone's inference form does not export (%s); exporting the plain network",
                            type(exc).__name__)
                modules[name], _ = load_backbone(spec, weights, torch.device("cpu"), allow_unverified=config.allow_unverified_weights,
                                                 exact=True)
                form = network_form(True)
                path = _write_network(modules[name], name, config.format, spec, feature, work)
            networks[name] = {"file": path.name, "precision": "fp32", "check": check_network(modules[name], name, path, config.format,
                                                                                            spec, feature)}
        if config.int8:
            from vad.pipeline.quantize import quantize_backbone

            networks["backbone"].update(quantize_backbone(work / networks["backbone"]["file"], detector, spec,
                                                          feature, config, progress=progress))
        for entry in networks.values():
            entry["sha256"] = _file_digest(work / entry["file"])
        manifest = _manifest(model, payload, spec, feature, config.format, networks, form=form)
        atomic_write_json(work / EXPORT_FILE, manifest)
        _replace(out, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return Exported(out, manifest)


def _replace(out: Path, work: Path) -> None:
    """Move the finished export into `out`: an old export is renamed aside first and deleted after."""
    old = None
    if out.exists():
        old = out.with_name(f"{temporary_prefix(out)}old")
        shutil.rmtree(old, ignore_errors=True)
        out.rename(old)
    work.rename(out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


# -- reading an export back -----------------------------------------------------------------------
def is_export(path: Path | None) -> bool:
    return path is not None and Path(path).is_dir() and (Path(path) / EXPORT_FILE).is_file()


def read_export(folder: Path, verify: bool = True) -> Exported:
    """The export in `folder`, its manifest checked: kind and version, file names inside the folder,
    and (verify) every network file's sha256. ExportError names what is wrong and how to fix it."""
    folder = Path(folder)
    manifest_path = folder / EXPORT_FILE
    try:
        manifest = json.loads(manifest_path.read_text())
    except FileNotFoundError:
        raise ExportError(f"{folder}: no {EXPORT_FILE}; pass a model.pt or a folder written by `vad export`") from None
    except (OSError, ValueError) as exc:
        raise ExportError(f"{manifest_path}: not readable JSON ({exc}); export the model again with `vad export`") from None
    if not isinstance(manifest, dict) or manifest.get("kind") != EXPORT_KIND:
        raise ExportError(f"{manifest_path}: not a vad export manifest (no kind {EXPORT_KIND!r})")
    if manifest.get("export_format") != EXPORT_FORMAT or manifest.get("format") not in FORMATS:
        raise ExportError(f"{manifest_path}: export format {manifest.get('export_format')!r} of {manifest.get('format')!r} is not one "
                          f"this vad reads (format {EXPORT_FORMAT}: onnx, openvino); export the model again")
    exported = Exported(folder, manifest)
    for name in NETWORKS:
        entry = (manifest.get("networks") or {}).get(name)
        file = entry.get("file") if isinstance(entry, dict) else None
        # a plain name inside the folder: a manifest must not point vad at files elsewhere
        if not isinstance(file, str) or Path(file).name != file or file in ("", ".", ".."):
            raise ExportError(f"{manifest_path}: network {name!r} names no file inside the folder ({file!r})")
        path = exported.path(name)
        if not path.is_file() or (path.suffix == ".xml" and not path.with_suffix(".bin").is_file()):
            raise ExportError(f"{folder}: {file} (the {name}) is missing; export the model again")
        if verify and _file_digest(path) != entry.get("sha256"):
            raise ExportError(f"{path}: sha256 differs from the one {EXPORT_FILE} records: the file was changed or is damaged; "
                              f"export the model again")
    return exported


def runtime_export(model: Path, fmt: str, config: ExportConfig) -> Exported:
    """The export a runtime needs of a model.pt, kept in the data folder (<data>/exports/) and made once:
    keyed by the model file, the backbone weights and the network form."""
    read_model_file(model)  # a missing or foreign file: its own one-line error, before anything is hashed
    # Verified weights are the ones the model records, whichever path names them: one export. Only
    # --allow-unverified-weights can bring other weights, which are then part of the key.
    weights = sha256_file(config.weights) if config.weights is not None and config.allow_unverified_weights else "recorded"
    key = hashlib.sha256(f"{sha256_file(model)} {weights} {config.exact}".encode()).hexdigest()[:20]
    folder = home.data_dir() / "exports" / f"{key}-{fmt}"
    if is_export(folder):
        try:
            return read_export(folder)
        except ExportError as exc:
            log.warning("warning: %s; exporting again", exc)
    log.info("exporting %s to %s once, into %s (vad export does this ahead of time)", model, fmt, folder)
    return export_model(model, folder, ExportConfig(format=fmt, weights=config.weights, exact=config.exact,
                                                     allow_unverified_weights=config.allow_unverified_weights, overwrite=True),
                        progress=False)

