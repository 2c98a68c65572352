"""The deterministic i3d-r50 weights the golden outputs were computed with (seed 20261128).

docs/backbones.md, "The generated i3d-r50 weights of the tests", gives the recipe; the golden
outputs in tests/data/golden/i3d-r50 were computed with these weights, not the Kinetics ones, so
the tests need no download. Rules a-g of that table, first match wins.
"""
from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import torch

from paths import GOLDEN_R50

SEED = 20261128
KEYS_JSON = GOLDEN_R50 / "i3d_r50_kinetics.keys.json"
WEIGHTS_CHECK_JSON = GOLDEN_R50 / "weights_check.json"


def golden_keys() -> list[tuple[str, tuple[int, ...], str]]:
    """(key, shape, dtype) in I3Res50().state_dict() order."""
    return [(e["key"], tuple(e["shape"]), e["dtype"]) for e in json.loads(KEYS_JSON.read_text())["keys"]]


def _value(key: str, shape: tuple[int, ...], z: np.ndarray) -> np.ndarray:
    if key.endswith(".weight") and len(shape) >= 2:
        return z * math.sqrt(2.0 / math.prod(shape[1:]))
    if key == "fc.bias":
        return 0.01 * z
    if key.endswith(".weight"):
        return 1.0 + 0.1 * z
    if key.endswith(".bias"):
        return 0.1 * z
    if key.endswith(".running_mean"):
        return 0.1 * z
    if key.endswith(".running_var"):
        return 1.0 + 0.1 * np.abs(z)
    raise ValueError(f"no generator rule for {key}")


def generate_state_dict() -> dict[str, torch.Tensor]:
    rng = np.random.default_rng(SEED)
    state: dict[str, torch.Tensor] = {}
    for key, shape, _ in golden_keys():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(0, dtype=torch.int64)  # rule a: draws nothing
            continue
        state[key] = torch.from_numpy(_value(key, shape, rng.standard_normal(shape)).astype(np.float32))
    return state


def state_dict_sha256(state: dict[str, torch.Tensor]) -> str:
    """sha256 of all tensors' little-endian bytes concatenated in key order (weights_check.json)."""
    digest = hashlib.sha256()
    for tensor in state.values():
        array = tensor.numpy()
        digest.update(array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes())
    return digest.hexdigest()


def expected_sha256() -> str:
    return json.loads(WEIGHTS_CHECK_JSON.read_text())["sha256_all_tensors_concat_in_key_order"]


def write_weights(path: Path) -> Path:
    torch.save(generate_state_dict(), path)
    return path
