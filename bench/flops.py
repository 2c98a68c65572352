"""Analytic convolution cost of a backbone: multiply-accumulates counted from the module graph.

Forward hooks see every convolution the feature forward runs, with its real output shape, so
strides, 'SAME' pads and temporal pooling are whatever the network does, not a hand-kept
table. MACs of one convolution = output elements x (input channels / groups) x kernel volume;
FLOPs = 2 x MACs (I3D's usual "108 GFLOPs" for 64-frame Inception counts MACs). BatchNorm,
pooling and ReLU are left out: they are < 1% and run at memory speed, not tensor-core speed.

    python bench/flops.py [--backbones i3d-r50,i3d-inception] [--frames 16] [--size 224]

Inception-I3D on 1x16x224x224 gives 27.79 GMAC (docs/backbones.md, "Cost (FLOPs)").
"""
from __future__ import annotations

import argparse
import json
import math

import torch
from torch import nn


def conv_macs(conv: nn.Conv3d, output: torch.Tensor) -> int:
    """MACs of one Conv3d call per clip (output is [B, C_out, T, H, W])."""
    per_output = (conv.in_channels // conv.groups) * math.prod(conv.kernel_size)
    return output[0].numel() * per_output


def count_macs(model: nn.Module, clip: torch.Tensor) -> dict[str, int]:
    """{module name: MACs per clip} for every convolution of one forward of `clip` ([1, 3, T, H, W]).

    A module that holds a Conv3d as `.conv` but applies its weight through F.conv3d (Inception's
    Unit3D folds BatchNorm into it) never calls the Conv3d; it is counted from its own output,
    which has the convolution's shape because only BatchNorm and ReLU follow.
    """
    macs: dict[str, int] = {}
    called: set[str] = set()
    hooks = []
    names = {module: name for name, module in model.named_modules()}

    def on_conv(module, _inputs, output):
        macs[names[module]] = macs.get(names[module], 0) + conv_macs(module, output)
        called.add(names[module])

    def on_owner(module, _inputs, output):
        inner = names[module.conv]
        if inner not in called:
            macs[inner] = macs.get(inner, 0) + conv_macs(module.conv, output)

    for module in model.modules():
        if isinstance(module, nn.Conv3d):
            hooks.append(module.register_forward_hook(on_conv))
        elif isinstance(getattr(module, "conv", None), nn.Conv3d):
            hooks.append(module.register_forward_hook(on_owner))
    try:
        with torch.inference_mode():
            model(clip)
    finally:
        for hook in hooks:
            hook.remove()
    return macs


def backbone_gmacs(name: str, frames: int = 16, size: int = 224) -> dict:
    """Conv GMAC and GFLOP per clip of a registered backbone's feature forward (weights irrelevant)."""
    from vad.extract.backbones import get_backbone

    model = get_backbone(name).build().eval()
    macs = count_macs(model, torch.zeros(1, 3, frames, size, size))
    total = sum(macs.values())
    return {"backbone": name, "clip": [frames, size, size], "convs": len(macs), "gmac_per_clip": round(total / 1e9, 4),
            "gflop_per_clip": round(2 * total / 1e9, 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbones", default="i3d-r50,i3d-inception")
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--size", type=int, default=224)
    args = parser.parse_args()
    print(json.dumps({"bench": "flops", "results": [backbone_gmacs(b, args.frames, args.size) for b in args.backbones.split(",")]}, indent=1))


if __name__ == "__main__":
    main()
