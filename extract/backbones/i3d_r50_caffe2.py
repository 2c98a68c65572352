"""Caffe2 video-nonlocal-net I3D R50 blobs -> the i3d-r50 state_dict (the converter of the i3d-r50 weights entry).

Reproduces pytorch-resnet3d's utils/convert_weights.py, which made the i3d_r50_kinetics.pth that
the reference extractor loads: a pure renaming of the blobs of
i3d_baseline_32x2_IN_pretrain_400k.pkl, no value changes. The names are derived here from
our state_dict keys (the inverse direction), so a missing blob is an error instead of a key
silently left out.

    conv1_w                               -> conv1.weight
    res_conv1_bn_{s,b,rm,riv}             -> bn1.{weight,bias,running_mean,running_var}
    res{L+1}_{B}_branch2{a,b,c}_w         -> layer{L}.{B}.conv{1,2,3}.weight
    res{L+1}_{B}_branch2{a,b,c}_bn_<sfx>  -> layer{L}.{B}.bn{1,2,3}.<param>
    res{L+1}_{B}_branch1_w                -> layer{L}.{B}.downsample.0.weight
    res{L+1}_{B}_branch1_bn_<sfx>         -> layer{L}.{B}.downsample.1.<param>
    pred_{w,b}                            -> fc.{weight,bias}

The pickle is a Python-2 dump and is read with the restricted unpickler only (numpy arrays
and builtin containers), never with pickle.load.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch

from vad.weights import WeightsError
from vad.weights.safe_pickle import restricted_load

_BN_SUFFIX = {"weight": "s", "bias": "b", "running_mean": "rm", "running_var": "riv"}
_STEM = {
    "conv1.weight": "conv1_w",
    **{f"bn1.{param}": f"res_conv1_bn_{sfx}" for param, sfx in _BN_SUFFIX.items()},
    "fc.weight": "pred_w",
    "fc.bias": "pred_b",
}
_BLOCK = re.compile(r"layer(\d)\.(\d+)\.(conv|bn)([123])\.(\w+)")
_SHORTCUT = re.compile(r"layer(\d)\.(\d+)\.downsample\.([01])\.(\w+)")


def blob_name(key: str) -> str:
    """The Caffe2 blob that holds state_dict entry `key` (res2..res5 = layer1..layer4)."""
    if key in _STEM:
        return _STEM[key]
    if match := _BLOCK.fullmatch(key):
        layer, block, kind, index, param = match.groups()
        prefix = f"res{int(layer) + 1}_{block}_branch2{'abc'[int(index) - 1]}"
        return f"{prefix}_w" if kind == "conv" else f"{prefix}_bn_{_BN_SUFFIX[param]}"
    if match := _SHORTCUT.fullmatch(key):
        layer, block, index, param = match.groups()
        prefix = f"res{int(layer) + 1}_{block}_branch1"
        return f"{prefix}_w" if index == "0" else f"{prefix}_bn_{_BN_SUFFIX[param]}"
    raise KeyError(f"no Caffe2 blob for state_dict key {key!r}")


def _target_shapes() -> dict[str, tuple[int, ...]]:
    # Imported here: i3d_r50 imports this module for its weights entry.
    from vad.extract.backbones.i3d_r50 import i3d_r50

    with torch.device("meta"):  # shapes only, no 28M-parameter allocation
        model = i3d_r50()
    return {k: tuple(v.shape) for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}


def _read_blobs(source_path: Path) -> dict:
    try:
        with open(source_path, "rb") as handle:
            # Python-2 pickle: latin1 keeps numpy's byte strings intact.
            content = restricted_load(handle, encoding="latin1")
    except Exception as exc:  # the unpickler raises UnpicklingError, EOFError, ValueError... on bad files
        raise WeightsError(f"{source_path}: not a readable Caffe2 blob pickle ({type(exc).__name__}: {exc})") from None
    if not isinstance(content, dict) or not isinstance(content.get("blobs"), dict):
        raise WeightsError(f"{source_path}: expected a Caffe2 pickle {{'blobs': {{name: array}}}}")
    return content["blobs"]


def convert(source_path: Path) -> dict[str, torch.Tensor]:
    """state_dict (float32, our key order, without num_batches_tracked) from the Caffe2 blob pickle."""
    blobs = _read_blobs(Path(source_path))
    state: dict[str, torch.Tensor] = {}
    for key, shape in _target_shapes().items():
        name = blob_name(key)
        if name not in blobs:
            raise WeightsError(f"{source_path}: blob {name!r} (for {key}) is missing; is this i3d_baseline_32x2_IN_pretrain_400k.pkl?")
        value = blobs[name]
        if not isinstance(value, np.ndarray) or value.dtype.kind != "f":
            raise WeightsError(f"{source_path}: blob {name!r} is not a floating-point array")
        if tuple(value.shape) != shape:
            raise WeightsError(f"{source_path}: blob {name!r} has shape {tuple(value.shape)}, {key} needs {shape}")
        state[key] = torch.from_numpy(np.array(value, dtype=np.float32))
    return state
