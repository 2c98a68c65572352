"""Snippets: T = ceil(n/16), the last padded with the last frame; crops in TenCrop order."""
from __future__ import annotations

import numpy as np
import pytest

from vad.extract.preprocess import Geometry, crop_boxes, resize_frame, resized_size, snippet_crops
from vad.extract.snippets import SnippetPlan, VideoSummary, iter_snippets

from videos import pattern_frames, write_lossless

SMALL = Geometry(clip_len=16, short_side=32, crop_size=24)


@pytest.mark.parametrize("n_frames,expected", [(1, 1), (15, 1), (16, 1), (17, 2), (40, 3)])
def test_snippet_count_and_last_frame_padding(tmp_path, n_frames, expected):
    frames = pattern_frames(n_frames, width=48, height=32, seed=n_frames)
    path = write_lossless(tmp_path / "v.mp4", frames)
    summary = VideoSummary()
    snippets = list(iter_snippets(path, SnippetPlan(crops=1, decoder="pyav", geometry=SMALL), summary))
    assert len(snippets) == expected == summary.n_snippets
    assert summary.n_frames == n_frames and summary.fps == 25.0 and not summary.partial
    resized = np.stack([resize_frame(f, SMALL.short_side) for f in frames])
    top, left = crop_boxes(*resized.shape[1:3], SMALL.crop_size)[4]
    centre = resized[:, top:top + 24, left:left + 24]
    padded = np.concatenate([centre, np.repeat(centre[-1:], 16 * expected - n_frames, 0)])
    assert np.array_equal(np.concatenate([s[0] for s in snippets]), padded)


def test_resized_size_truncates_the_long_side():
    assert resized_size(240, 320) == (256, 341)
    assert resized_size(480, 856) == (256, 456)
    assert resized_size(272, 640) == (256, 602)
    assert resized_size(320, 240) == (341, 256)


def test_ten_crop_boxes_and_flipped_centre():
    assert crop_boxes(256, 341) == [(0, 0), (0, 117), (32, 0), (32, 117), (16, 58)]
    snippet = np.random.default_rng(0).integers(0, 256, (2, 256, 341, 3), dtype=np.uint8)
    crops = snippet_crops(snippet, 10).numpy()
    assert crops.shape == (10, 2, 224, 224, 3)
    flipped = snippet[:, :, ::-1]
    assert np.array_equal(crops[9], flipped[:, 16:240, 58:282])
    # Crop 9 is not the mirror of crop 4 when (w - 224) is odd: it is one column over.
    assert not np.array_equal(crops[9], crops[4][:, :, ::-1])
    assert np.array_equal(crops[9], snippet[:, 16:240, 59:283][:, :, ::-1])
    assert np.array_equal(snippet_crops(snippet, 1)[0], crops[4])
    with pytest.raises(ValueError, match="crops must be 1 or 10"):
        snippet_crops(snippet, 5)
