"""Frame curves as pictures, and the one thresholding helper."""
from __future__ import annotations

import numpy as np
import pytest

from vad.pipeline.plot import intervals_above, pick_thumbnail_frames, plot_curve

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("scores,threshold,expected", [
    ([0.1, 0.6, 0.7, 0.2, 0.9], 0.5, [(1, 3), (4, 5)]),
    ([0.9, 0.9, 0.9], 0.5, [(0, 3)]),
    ([0.1, 0.2], 0.5, []),
    ([0.5, 0.51, 0.5], 0.5, [(1, 2)]),  # strictly above: a score equal to the threshold is normal
    ([np.nan, 0.8, np.nan], 0.5, [(1, 2)]),
    ([], 0.5, []),
])
def test_intervals_above_returns_end_exclusive_runs(scores, threshold, expected):
    assert intervals_above(np.array(scores, dtype=float), threshold) == expected


def test_intervals_above_takes_plain_lists_and_2d_columns():
    assert intervals_above([0, 1, 1, 0], 0.5) == [(1, 3)]
    assert intervals_above(np.array([[0.0], [1.0]]), 0.5) == [(1, 2)]


def test_thumbnails_go_to_separate_peaks_and_calm_moments():
    scores = np.full(100, 0.3)
    scores[[10, 11, 50, 80]] = [0.9, 0.95, 0.8, 0.7]
    scores[[30, 65]] = [0.0, 0.01]
    picks = pick_thumbnail_frames(scores, n_peaks=3, n_normal=2)
    assert picks == [(11, "peak"), (30, "normal"), (50, "peak"), (65, "normal"), (80, "peak")]


def test_short_videos_get_fewer_thumbnails_without_repeats():
    picks = pick_thumbnail_frames(np.array([0.2, 0.9, 0.1]), n_peaks=3, n_normal=2)
    assert picks == [(0, "peak"), (1, "peak"), (2, "peak")]  # every frame once, highest first


def _read_png(path):
    matplotlib_image = pytest.importorskip("matplotlib.image")
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    return matplotlib_image.imread(path)


def test_curve_alone_is_a_png_of_the_expected_size(tmp_path):
    scores = np.clip(np.sin(np.linspace(0, 6, 120)), 0, 1)
    path = plot_curve(tmp_path / "out" / "curve.png", scores, fps=25, threshold=0.5, dpi=40)
    assert path == tmp_path / "out" / "curve.png"
    assert _read_png(path).shape[:2] == (128, 400)  # 3.2 x 10 inches at 40 dpi


def test_curve_with_thumbnails_from_a_callable_asks_for_the_picked_frames_once(tmp_path):
    scores = np.zeros(80)
    scores[30:50] = 0.9
    frames = np.random.default_rng(0).integers(0, 256, (80, 24, 32, 3), dtype=np.uint8)
    asked = []

    def provider(indices):
        asked.append(list(indices))
        return [frames[i] for i in indices]

    path = plot_curve(tmp_path / "c.png", scores, fps=10, threshold=0.5, gt_intervals=[(28, 52)],
                      thumbnails=provider, title="clip", dpi=40)
    assert _read_png(path).shape[:2] == (224, 400)  # 5.6 x 10 inches at 40 dpi
    assert len(asked) == 1 and asked[0] == sorted(asked[0]) and len(asked[0]) == 5
    assert sum(30 <= i < 50 for i in asked[0]) == 3  # the three peaks lie in the abnormal stretch


def test_curve_with_thumbnails_from_an_array(tmp_path):
    frames = np.zeros((40, 12, 16, 3), dtype=np.uint8)
    path = plot_curve(tmp_path / "c.png", np.linspace(0, 1, 40), fps=25, thumbnails=frames, dpi=30)
    assert _read_png(path).shape[:2] == (168, 300)


def test_a_provider_returning_too_few_frames_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="returned 1 frames for 5 requested"):
        plot_curve(tmp_path / "c.png", np.linspace(0, 1, 50), fps=25, thumbnails=lambda idx: [np.zeros((8, 8, 3), np.uint8)], dpi=30)


def test_bad_inputs_are_refused(tmp_path):
    with pytest.raises(ValueError, match="no scores"):
        plot_curve(tmp_path / "c.png", [], fps=25)
    with pytest.raises(ValueError, match="fps must be positive"):
        plot_curve(tmp_path / "c.png", [0.5], fps=0)
