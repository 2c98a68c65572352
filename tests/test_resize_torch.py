"""Resize and crop next to the network (`--resize-on device`): bit-identical to the Pillow path."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from vad.errors import ConfigError
from vad.extract.backbones import get_backbone
from vad.extract.engine import Engine
from vad.extract.preprocess import finish_snippet, normalise_caffe, resize_frame, to_network_layout
from vad.extract.resize_torch import pillow_bilinear_taps, resize_like_pillow
from vad.extract.runner import ExtractConfig
from vad.extract.snippets import MAX_DEFERRED_PIXELS, SnippetPlan, VideoSummary, iter_snippets

from paths import GOLDEN_R50
from videos import clip40_frames


def pillow(frame: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    return np.asarray(Image.fromarray(frame).resize((out_w, out_h), Image.BILINEAR))


def ours(frame: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    return resize_like_pillow(torch.from_numpy(frame)[None], out_h, out_w)[0].numpy()


def test_golden_resizes_are_reproduced_bit_for_bit():
    np.testing.assert_array_equal(ours(clip40_frames()[39], 256, 341), np.load(GOLDEN_R50 / "clip40_resized_f39_nojpeg.npy"))
    case = np.load(GOLDEN_R50 / "resize_856x480_to_456x256.npz")
    np.testing.assert_array_equal(ours(case["input_rgb"], 256, 456), case["resized_rgb"])


@settings(max_examples=40, deadline=None)
@given(in_h=st.integers(1, 300), in_w=st.integers(1, 300), out_h=st.integers(1, 300), out_w=st.integers(1, 300),
       seed=st.integers(0, 2**16))
def test_any_size_up_or_down_equals_pillow(in_h, in_w, out_h, out_w, seed):
    frame = np.random.default_rng(seed).integers(0, 256, (in_h, in_w, 3), dtype=np.uint8)
    np.testing.assert_array_equal(ours(frame, out_h, out_w), pillow(frame, out_h, out_w))


def test_4k_down_to_256_equals_pillow_and_saturated_pixels_stay_in_range():
    frame = np.random.default_rng(1).integers(0, 256, (2160, 3840, 3), dtype=np.uint8)
    frame[:100] = 255  # the int32 accumulator's worst case: every tap at 255
    np.testing.assert_array_equal(ours(frame, 256, 455), resize_frame(frame))


def test_pass_order_follows_pillow_for_portrait_reductions():
    # Pillow 13 takes the vertical pass first here (and horizontal first for landscape 856x480):
    # on this frame the other order is one grey level off in a quarter of the values.
    frame = np.random.default_rng(2).integers(0, 256, (1016, 307, 3), dtype=np.uint8)
    np.testing.assert_array_equal(ours(frame, 847, 256), resize_frame(frame))


def test_taps_are_pillows_fixed_point_weights():
    index, weight = pillow_bilinear_taps(4, 2)  # halving: each output averages a 2x neighbourhood with a tent
    assert index.shape == weight.shape == (2, 5)
    assert weight.sum(axis=1).tolist() == [1 << 22, 1 << 22]
    # output 0 centres on input 1.0 with support 2: tent weights 3/4, 3/4, 1/4, normalised to 3/7, 3/7, 1/7
    assert index[0, :3].tolist() == [0, 1, 2] and weight[0, :3].tolist() == [1797559, 1797559, 599186]
    with pytest.raises(TypeError, match="uint8"):
        resize_like_pillow(torch.zeros(1, 4, 4, 3), 2, 2)


def clip40_snippets(tmp_path, on_device: bool) -> list[torch.Tensor]:
    plan = SnippetPlan(crops=10, jpeg_quality=95, decoder="pyav", geometry_on_device=on_device)
    return list(iter_snippets(GOLDEN_R50 / "clip40.mp4", plan, VideoSummary()))


def test_deferred_frames_finish_into_the_same_crops_and_the_golden_input(tmp_path):
    workers = clip40_snippets(tmp_path, on_device=False)
    frames = clip40_snippets(tmp_path, on_device=True)
    assert [tuple(f.shape) for f in frames] == [(16, 240, 320, 3)] * 3  # whole decoded frames cross the process boundary
    finished = [finish_snippet(f, 10, SnippetPlan().geometry) for f in frames]
    assert all(torch.equal(a, b) for a, b in zip(workers, finished))
    x = normalise_caffe(to_network_layout(finished[2]))
    np.testing.assert_array_equal(x[:, :, 15].numpy(), np.load(GOLDEN_R50 / "clip40_preproc_s2_f15_10crops.npz")["crops"])


def test_frames_over_1080p_are_still_resized_in_the_worker(tmp_path):
    from videos import write_lossless

    width, height = 2048, 1152
    assert width * height > MAX_DEFERRED_PIXELS
    path = write_lossless(tmp_path / "big.mp4", np.full((2, height, width, 3), 90, dtype=np.uint8))
    plan = SnippetPlan(crops=1, decoder="pyav", geometry_on_device=True)
    (snippet,) = iter_snippets(path, plan, VideoSummary())
    assert tuple(snippet.shape) == (16, 256, 455, 3)


class TinyBackbone(torch.nn.Module):
    """Pools the normalised clip to 2x2x2 per channel: a cheap stand-in that sees every crop pixel."""

    def forward(self, x):
        return torch.nn.functional.adaptive_avg_pool3d(x, 2).flatten(1)


def test_batcher_on_device_gives_the_same_features_as_workers():
    spec = get_backbone("i3d-r50")
    cpu = torch.device("cpu")
    feats = {}
    for resize_on in ("workers", "device"):
        plan = ExtractConfig(crops=10, resize_on=resize_on).snippet_plan(spec, cpu)
        assert plan.geometry_on_device == (resize_on == "device")
        feats[resize_on], summary = Engine(TinyBackbone(), spec, plan, cpu, batch_size=2).video(GOLDEN_R50 / "clip40.mp4")
    assert feats["workers"].shape == (3, 10, 24) and summary.n_snippets == 3
    np.testing.assert_array_equal(feats["workers"], feats["device"])
    assert ExtractConfig(resize_on="auto").snippet_plan(spec, torch.device("cuda")).geometry_on_device
    assert not ExtractConfig(resize_on="auto").snippet_plan(spec, cpu).geometry_on_device
    with pytest.raises(ConfigError, match=r"setting 'resize_on' \(--resize-on\): 'gpu' is not one of auto, workers, device"):
        ExtractConfig(resize_on="gpu").check()


def test_a_batch_of_videos_of_two_sizes_is_finished_per_size_in_order():
    spec, cpu = get_backbone("i3d-r50"), torch.device("cpu")
    rng = np.random.default_rng(4)
    snippets = [torch.from_numpy(rng.integers(0, 256, (16, h, w, 3), dtype=np.uint8)) for h, w in [(240, 320), (480, 856), (240, 320)]]
    features = {}
    for on_device in (False, True):
        plan = SnippetPlan(crops=10, geometry_on_device=on_device)
        batcher = Engine(TinyBackbone(), spec, plan, cpu, batch_size=3, precision="fp32")
        for video, snippet in enumerate(snippets):
            batcher.add(video, 0, snippet if on_device else finish_snippet(snippet, 10, plan.geometry))
        features[on_device] = [batcher.take(video) for video in range(3)]
    for workers, device in zip(features[False], features[True]):
        np.testing.assert_array_equal(workers, device)
    assert not np.array_equal(features[True][0], features[True][2])  # each video kept its own crops
