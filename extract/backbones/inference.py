"""The inference form of a backbone: the same weights, computed the way CPUs and GPUs run fastest.

Three rewrites, none of which changes the function the network computes (docs/backbones.md,
"The inference form"):

- every eval-mode BatchNorm folds into the convolution before it (`fold_batchnorm`): one pass
  over the activations instead of three;
- a convolution whose temporal kernel, stride and padding are 1, 1 and 0 (I3D's (1,3,3) and
  (1,1,1) kernels, most of the multiply-adds) is a 2-D convolution of each frame: it runs as
  `conv2d` on the (batch x time) frames, which oneDNN and cuDNN run far closer to peak than
  `conv3d`;
- activations stay channels-last. A [B, C, T, H, W] tensor in `channels_last_3d` has the memory
  order B, T, H, W, C, which is also that of the [B*T, C, H, W] frames in `channels_last`: moving
  between the clip and the frame views (`frames`, `clip`) is a view, never a copy.

The true 3-D convolutions (the stems, the (3,1,1) temporal kernels, Inception's 3x3x3) stay
`conv3d`, on channels-last input.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def fold_batchnorm(conv: nn.Conv3d, bn: nn.BatchNorm3d) -> tuple[torch.Tensor, torch.Tensor]:
    """(weight, bias) of the convolution that computes bn(conv(x)) with BatchNorm's running statistics.

    bn(y) = gamma (y - mean) / sqrt(var + eps) + beta, so with s = gamma / sqrt(var + eps) it is the
    convolution with weight s * W and bias beta + s (b - mean). Folded in float64, then rounded once.
    """
    dtype = conv.weight.dtype
    scale = bn.weight.double() * torch.rsqrt(bn.running_var.double() + bn.eps)
    weight = conv.weight.double() * scale.view(-1, *([1] * (conv.weight.dim() - 1)))
    conv_bias = conv.bias.double() if conv.bias is not None else torch.zeros_like(scale)
    bias = bn.bias.double() + scale * (conv_bias - bn.running_mean.double())
    return weight.to(dtype), bias.to(dtype)


def frames(x: torch.Tensor) -> torch.Tensor:
    """[B, C, T, H, W] clips -> [B*T, C, H, W] frames (a view when `x` is channels_last_3d)."""
    b, c, t, h, w = x.shape
    return x.transpose(1, 2).reshape(b * t, c, h, w)


def clip(x: torch.Tensor, batch: int) -> torch.Tensor:
    """[B*T, C, H, W] frames -> [B, C, T, H, W] clips (a view when `x` is channels_last)."""
    bt, c, h, w = x.shape
    return x.reshape(batch, bt // batch, c, h, w).transpose(1, 2)


def channels_last(x: torch.Tensor) -> torch.Tensor:
    """A clip batch in the memory order the inference form computes in."""
    return x.contiguous(memory_format=torch.channels_last_3d)


def onednn_float32(x: torch.Tensor) -> bool:
    """Whether to call oneDNN's float32 convolution on `x` directly: on a CPU, with no autocast to
    cast it first, and not while torch.compile traces (its fake tensors cannot enter oneDNN; inductor
    chooses its own kernels)."""
    return (x.device.type == "cpu" and x.dtype == torch.float32 and torch.backends.mkldnn.is_available()
            and not torch.is_autocast_enabled("cpu") and not torch.compiler.is_compiling())


class FoldedConv(nn.Module):
    """A convolution with its BatchNorm folded in, optionally followed by ReLU, on channels-last clips.

    Framewise kernels (temporal kernel 1, no temporal stride or padding) run as `conv2d` on the
    frames, the others as `conv3d`.
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor, stride: tuple[int, int, int], padding: tuple[int, int, int], relu: bool):
        super().__init__()
        self.framewise = weight.shape[2] == 1 and stride[0] == 1 and padding[0] == 0
        if self.framewise:
            weight = weight.squeeze(2).contiguous(memory_format=torch.channels_last)
            self.stride, self.padding = tuple(stride[1:]), tuple(padding[1:])
        else:
            weight = weight.contiguous(memory_format=torch.channels_last_3d)
            self.stride, self.padding = tuple(stride), tuple(padding)
        self.register_buffer("weight", weight)
        self.register_buffer("bias", bias)
        self.relu = relu

    @classmethod
    def of(cls, conv: nn.Conv3d, bn: nn.BatchNorm3d, relu: bool, padding: tuple[int, int, int] | None = None) -> FoldedConv:
        """`conv` then `bn` (then ReLU); `padding` overrides the convolution's own (Inception pads 'SAME' itself)."""
        if conv.groups != 1 or tuple(conv.dilation) != (1, 1, 1):
            raise ValueError(f"{conv}: grouped or dilated convolutions have no inference form")
        weight, bias = fold_batchnorm(conv, bn)
        return cls(weight, bias, tuple(conv.stride), tuple(conv.padding) if padding is None else padding, relu)

    @classmethod
    def side_by_side(cls, convs: list[FoldedConv]) -> FoldedConv:
        """One convolution computing several that read the same input, their outputs concatenated
        on channels: one large matrix product instead of several narrow ones."""
        first = convs[0]
        if any((c.stride, c.padding, c.relu, c.framewise, c.weight.shape[1:]) != (first.stride, first.padding, first.relu, first.framewise,
                                                                                   first.weight.shape[1:]) for c in convs):
            raise ValueError("only convolutions of one shape, stride, padding and activation sit side by side")
        weight = torch.cat([c.weight for c in convs])
        if first.framewise:
            weight = weight.unsqueeze(2)
        stride, padding = ((1, *first.stride), (0, *first.padding)) if first.framewise else (first.stride, first.padding)
        return cls(weight, torch.cat([c.bias for c in convs]), stride, padding, first.relu)

    @property
    def out_channels(self) -> int:
        return self.weight.shape[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.framewise:
            y = clip(F.conv2d(frames(x), self.weight, self.bias, self.stride, self.padding), x.shape[0])
        elif onednn_float32(x):
            # PyTorch's CPU dispatch sends a one-clip 3x3x3 convolution with few channels to its
            # native kernel (its use_mkldnn heuristic), which is 1.5-4.5x slower than oneDNN on
            # Inception's branch shapes and returns a contiguous, not a channels-last, tensor.
            y = torch.ops.aten.mkldnn_convolution(x, self.weight, self.bias, self.padding, self.stride, (1, 1, 1), 1)
        else:
            y = F.conv3d(x, self.weight, self.bias, self.stride, self.padding)
        return F.relu(y, inplace=True) if self.relu else y

    def extra_repr(self) -> str:
        kind = "conv2d per frame" if self.framewise else "conv3d"
        return f"{kind}, weight {tuple(self.weight.shape)}, stride {self.stride}, padding {self.padding}, relu={self.relu}"
