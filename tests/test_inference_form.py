"""The inference form of the backbones (extract/backbones/inference.py): folded BatchNorm, 2-D
convolutions of channels-last frames, one max-pool call, torch.compile with its fall-back.

The golden checks hold the fast form to the same bound as the plain network: 1e-5 of max|ref|.
End to end (the clip40 and bikes pipelines of test_extract_cli.py) the fast form is the default.
"""
from __future__ import annotations

import logging
import shutil

import numpy as np
import pytest
import torch
from torch import nn

from vad.extract import engine as engine_module
from vad.extract.backbones import get_backbone
from vad.extract.backbones.i3d_r50 import i3d_r50
from vad.extract.backbones.inception_i3d import FastMaxPool3dSame, MaxPool3dSame, build_inception_i3d
from vad.extract.backbones.inference import FoldedConv, channels_last, clip, fold_batchnorm, frames
from vad.extract.engine import Compiled, Engine, resolve_precision, scoring_precision
from vad.extract.snippets import SnippetPlan
from vad.weights import load_state_dict_file, load_weights

from cpu_flags import CPUS, pretend_cpu
from paths import GOLDEN_INC, GOLDEN_R50


def relative(ours: torch.Tensor | np.ndarray, ref: np.ndarray) -> float:
    ours = ours.numpy() if isinstance(ours, torch.Tensor) else ours
    return float(np.abs(ours.astype(np.float64) - ref).max() / np.abs(ref).max())


def random_bn(channels: int, seed: int) -> nn.BatchNorm3d:
    g = torch.Generator().manual_seed(seed)
    bn = nn.BatchNorm3d(channels, eps=1e-3).eval()
    with torch.no_grad():
        bn.weight.uniform_(0.5, 2.0, generator=g)
        bn.bias.normal_(generator=g)
        bn.running_mean.normal_(generator=g)
        bn.running_var.uniform_(0.1, 3.0, generator=g)
    return bn


@pytest.mark.parametrize("kernel,stride,padding", [((1, 3, 3), (1, 2, 2), (0, 1, 1)), ((1, 1, 1), (1, 1, 1), (0, 0, 0)),
                                                   ((3, 1, 1), (1, 1, 1), (1, 0, 0)), ((3, 3, 3), (2, 2, 2), (1, 1, 1))])
@pytest.mark.parametrize("bias", [False, True])
def test_folded_conv_equals_conv_then_batchnorm(kernel, stride, padding, bias):
    torch.manual_seed(0)
    conv = nn.Conv3d(6, 8, kernel, stride, padding, bias=bias)
    bn = random_bn(8, seed=1)
    x = torch.randn(2, 6, 4, 9, 9)
    expected = torch.relu(bn(conv(x)))
    folded = FoldedConv.of(conv, bn, relu=True)
    assert folded.framewise == (kernel[0] == 1)  # the 2-D path is taken exactly for temporal kernel 1
    with torch.no_grad():
        out = folded(x.contiguous(memory_format=torch.channels_last_3d))
    assert out.shape == expected.shape
    torch.testing.assert_close(out, expected, rtol=0, atol=2e-5)


def test_fold_batchnorm_is_the_batchnorm_formula():
    conv = nn.Conv3d(2, 3, 1, bias=True)
    bn = random_bn(3, seed=2)
    weight, bias = fold_batchnorm(conv, bn)
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    torch.testing.assert_close(weight, conv.weight * scale.view(-1, 1, 1, 1, 1))
    torch.testing.assert_close(bias, bn.bias + scale * (conv.bias - bn.running_mean))


def test_frames_and_clip_are_views_of_channels_last_clips():
    x = torch.randn(2, 5, 3, 4, 6).contiguous(memory_format=torch.channels_last_3d)
    f = frames(x)
    assert f.shape == (6, 5, 4, 6) and f.data_ptr() == x.data_ptr()  # no copy
    assert f.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(f[4], x[1, :, 1])  # frame 4 = clip 1, time 1
    back = clip(f, batch=2)
    assert back.data_ptr() == x.data_ptr() and torch.equal(back, x)


def test_side_by_side_convolutions_equal_the_separate_ones():
    torch.manual_seed(3)
    convs = [FoldedConv.of(nn.Conv3d(4, c, 1), random_bn(c, seed=c), relu=True) for c in (2, 5, 3)]
    x = torch.randn(2, 4, 3, 5, 5).contiguous(memory_format=torch.channels_last_3d)
    fused = FoldedConv.side_by_side(convs)
    with torch.no_grad():
        torch.testing.assert_close(fused(x), torch.cat([c(x) for c in convs], dim=1), rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="side by side"):
        FoldedConv.side_by_side([convs[0], FoldedConv.of(nn.Conv3d(4, 2, (1, 3, 3), padding=(0, 1, 1)), random_bn(2, 0), relu=True)])


@pytest.mark.parametrize("kernel,stride,shape", [((1, 3, 3), (1, 2, 2), (1, 3, 4, 15, 16)), ((3, 3, 3), (1, 1, 1), (1, 3, 5, 7, 7)),
                                                 ((3, 3, 3), (2, 2, 2), (1, 3, 8, 28, 27)), ((2, 2, 2), (2, 2, 2), (1, 3, 4, 14, 14)),
                                                 ((3, 3, 3), (2, 2, 2), (1, 2, 5, 6, 6))])
def test_one_max_pool_call_equals_the_separable_same_pool(kernel, stride, shape):
    x = torch.randn(shape).contiguous(memory_format=torch.channels_last_3d)
    pool = MaxPool3dSame(kernel, stride)
    assert torch.equal(FastMaxPool3dSame(pool)(x), pool(x))


@pytest.fixture(scope="module")
def r50(r50_weights_path):
    net = i3d_r50()
    net.load_state_dict(load_state_dict_file(r50_weights_path), strict=True)
    return net.eval()


def test_r50_fast_form_reproduces_the_golden_clip(r50):
    """net_clip_out: the reference network on a seeded normal clip (tests/data/golden/i3d-r50)."""
    x = torch.from_numpy(np.random.default_rng(7).standard_normal((1, 3, 16, 224, 224)).astype(np.float32))
    flip = torch.cat([x, x.flip(-1)])
    fast = get_backbone("i3d-r50").fast(r50)
    with torch.inference_mode():
        out = fast(flip)
    assert relative(out[:1], np.load(GOLDEN_R50 / "net_clip_out.npy")) <= 1e-5
    assert relative(out[:1], np.load(GOLDEN_R50 / "net_clip_out_float64ref.npy")) <= 1e-5
    assert relative(out, np.load(GOLDEN_R50 / "net_clip_flip_batch2_out.npy")) <= 1e-5
    # the form really differs from the plain network: its modules are the 2-D ones
    assert sum(isinstance(m, FoldedConv) and m.framewise for m in fast.modules()) == 43
    assert not any(isinstance(m, nn.BatchNorm3d) for m in fast.modules())


@pytest.fixture(scope="module")
def inception(inception_weights_path):
    net = build_inception_i3d()
    load_weights(net, get_backbone("i3d-inception").weights, inception_weights_path)
    return net


def test_inception_fast_form_reproduces_the_golden_clip(inception):
    golden = np.load(GOLDEN_INC / "inc_rand16.npz")
    x = np.random.default_rng(11).uniform(-1, 1, size=(1, 16, 224, 224, 3)).astype(np.float32)
    x = torch.from_numpy(x).permute(0, 4, 1, 2, 3).contiguous()
    fast = get_backbone("i3d-inception").fast(inception)
    with torch.inference_mode():
        mixed = fast.mixed_5c(x)
        feature, logits = mixed.mean(dim=(2, 3, 4)), fast.head(mixed)
        assert torch.equal(fast(x), feature)
    assert relative(feature, golden["mixed_5c_mean"]) <= 1e-5
    assert relative(logits, golden["logits"]) <= 1e-5
    assert not any(isinstance(m, (nn.BatchNorm3d, MaxPool3dSame)) for m in fast.trunk.children())


class Doubler(nn.Module):
    def forward(self, x):
        return x.flatten(1)[:, :4] * 2


def test_compile_falls_back_to_eager_with_one_warning(monkeypatch, caplog):
    def broken(_x):
        raise RuntimeError("InductorError: no C++ compiler found\nmore detail")

    monkeypatch.setattr(torch, "compile", lambda model, **kwargs: broken)
    model = Compiled(Doubler(), torch.device("cpu"))
    x = torch.ones(2, 3)
    with caplog.at_level(logging.WARNING, logger="vad"):
        assert torch.equal(model(x), Doubler()(x))
        assert torch.equal(model(x), Doubler()(x))
    assert model.failed == "InductorError: no C++ compiler found"
    assert [r.getMessage() for r in caplog.records].count(
        "warning: torch.compile failed (InductorError: no C++ compiler found); running the network uncompiled") == 1


@pytest.mark.skipif(shutil.which("c++") is None and shutil.which("g++") is None, reason="inductor needs a C++ compiler on a CPU")
def test_the_inference_form_really_compiles():
    """A small network of the form's modules through torch.compile (about 10 s): compiling must
    not fall back, e.g. on the direct oneDNN call, which fake tensors cannot enter."""
    torch.manual_seed(0)
    net = nn.Sequential(FoldedConv.of(nn.Conv3d(3, 4, 3, padding=1), random_bn(4, 5), relu=True),
                        FoldedConv.of(nn.Conv3d(4, 4, 1), random_bn(4, 6), relu=False))
    x = channels_last(torch.randn(1, 3, 4, 8, 8))
    compiled = Compiled(net, torch.device("cpu"))
    with torch.inference_mode():
        out = compiled(x)
        expected = net(x)
    assert compiled.failed is None
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-5)


def test_compiled_engine_pads_every_batch_to_one_shape(monkeypatch):
    shapes = []

    def recording(model, **kwargs):
        return lambda x: (shapes.append(tuple(x.shape)), model(x))[1]

    monkeypatch.setattr(torch, "compile", recording)
    spec = get_backbone("i3d-r50")
    engine = Engine(Doubler(), spec, SnippetPlan(crops=1), torch.device("cpu"), batch_size=3, compile=True)
    snippets = [torch.full((1, 16, 224, 224, 3), i, dtype=torch.uint8) for i in range(4)]
    for index, snippet in enumerate(snippets):
        engine.add(0, index, snippet)
    engine.flush()
    out = engine.take(0)
    assert shapes == [(3, 3, 16, 224, 224)] * 2  # the second batch (one snippet) was padded
    assert out.shape == (4, 1, 4)
    expected = [2 * float(spec.normalise(torch.tensor([float(i)]))) for i in range(4)]
    np.testing.assert_allclose(out[:, 0, 0], expected, rtol=1e-6)


@pytest.mark.parametrize("cpu", sorted(CPUS))
def test_auto_precision_is_fp32_on_every_cpu_and_fp16_on_cuda(monkeypatch, cpu):
    """One answer on every CPU: bf16 hardware (AMX, AVX512-BF16) does not change what auto picks."""
    pretend_cpu(monkeypatch, cpu)
    assert scoring_precision(torch.device("cpu")) == "fp32" == resolve_precision("auto", torch.device("cpu"))
    assert scoring_precision(torch.device("cuda")) == "fp16" == resolve_precision("auto", torch.device("cuda"))
    assert resolve_precision("bf16", torch.device("cpu")) == "bf16"
    with pytest.raises(engine_module.ConfigError, match="--precision 'fp8'"):
        resolve_precision("fp8", torch.device("cpu"))



class Recording(Doubler):
    def __init__(self):
        super().__init__()
        self.shapes = []

    def forward(self, x):
        self.shapes.append(tuple(x.shape))
        return super().forward(x)


def test_a_cpu_engine_runs_one_clip_per_pass_with_the_batch_outputs_in_order():
    model = Recording()
    engine = Engine(model, get_backbone("i3d-r50"), SnippetPlan(crops=10), torch.device("cpu"), batch_size=2)
    assert engine.clips_per_pass == 1
    for index in range(2):  # snippet i, crop c filled with 10 i + c
        engine.add(0, index, torch.stack([torch.full((16, 224, 224, 3), 10 * index + c, dtype=torch.uint8) for c in range(10)]))
    out = engine.take(0)
    assert model.shapes == [(1, 3, 16, 224, 224)] * 20
    expected = 2 * (np.arange(20, dtype=np.float64).reshape(2, 10) - 114.75) / 57.375
    np.testing.assert_allclose(out[:, :, 0], expected, rtol=1e-6)
