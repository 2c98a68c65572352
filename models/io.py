"""model.pt: a state_dict plus plain-data configuration, loadable with weights_only=True.

    {"format": 2, "kind": "vad-arms-detector", "detector": DetectorConfig as dict,
     "state_dict": {...}, "feature": {"backbone", "feature_dim", "crops", ...from cache.json},
     "provenance": {"backbone", "train_videos": {"normal", "abnormal", "total"}, "cache",
                    "command", "generated_footage", "created", "vad_version"},
     "train": TrainConfig.to_dict(), "iteration": k, "phase": name,
     "ratios": {abnormal video id: lambda used in this iteration}}

"train" is flat: the training settings next to the detector's fields except feature_dim (which
"detector" holds). TrainConfig.from_dict reads it back; older files lack heads, kernel_size,
fc_dim and attention_dropout there, which read as the defaults they were trained with.

Format 2 is the detector with the gated attention branch; format 1 files (a LayerNorm block)
cannot be loaded into it and are refused with a message saying to retrain.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from vad.errors import VadError
from vad.files import atomic_write
from vad.models.detector import ARMSDetector, DetectorConfig

MODEL_FORMAT = 2
MODEL_KIND = "vad-arms-detector"


class ModelFileError(VadError):
    """A model file that is missing, unsafe or not ours; the message names the file."""


def save_model(path: str | os.PathLike, model: ARMSDetector, **info) -> None:
    """Atomically (temporary file, then rename): never a half-written model."""
    path = Path(path)
    payload = {
        "format": MODEL_FORMAT,
        "kind": MODEL_KIND,
        "detector": model.config.to_dict(),
        "state_dict": {key: value.detach().cpu() for key, value in model.state_dict().items()},
        **info,
    }
    atomic_write(path, lambda handle: torch.save(payload, handle))


def read_model_file(path: str | os.PathLike) -> dict:
    path = Path(path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ModelFileError(f"{path}: no such model file") from None
    except Exception as exc:  # torch raises several types for foreign or corrupt files
        raise ModelFileError(f"{path}: not a loadable model file ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from None
    if not isinstance(payload, dict) or payload.get("kind") != MODEL_KIND:
        raise ModelFileError(f"{path}: not a vad detector file (no kind {MODEL_KIND!r})")
    if payload.get("format") == 1:
        raise ModelFileError(f"{path}: written by an earlier vad (model format 1, whose detector had no attention gate); "
                             f"retrain it with `vad train`, or rerun `vad demo` for the demo model")
    if payload.get("format") != MODEL_FORMAT:
        raise ModelFileError(f"{path}: unsupported model format {payload.get('format')!r} (expected {MODEL_FORMAT})")
    return payload


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[ARMSDetector, dict]:
    """The detector (eval mode, on device) and the file's plain-data payload."""
    payload = read_model_file(path)
    model = ARMSDetector(DetectorConfig.from_dict(payload["detector"]))
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as exc:
        raise ModelFileError(f"{path}: weights do not fit the recorded architecture ({str(exc).splitlines()[0]})") from None
    return model.to(device).eval(), payload
