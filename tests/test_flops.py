"""bench/flops.py: conv MACs counted from the module graph match the golden notes' analytic figure."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

from flops import backbone_gmacs, count_macs  # noqa: E402


def test_inception_matches_golden_notes():
    # docs/backbones.md, "Cost (FLOPs)": 27.79 GMAC per 1x16x224x224 clip (58 convs incl. the
    # 0.0004 GMAC logits conv, which the feature forward does not run).
    result = backbone_gmacs("i3d-inception")
    assert result["convs"] == 57
    assert result["gmac_per_clip"] == pytest.approx(27.79, abs=0.005)
    assert result["gflop_per_clip"] == pytest.approx(2 * result["gmac_per_clip"], rel=1e-4)


def test_r50_count_is_stable():
    # 53 convs (stem, 16 bottlenecks x 3, 4 downsamples); the figure guards against hooks
    # silently missing or double counting layers.
    result = backbone_gmacs("i3d-r50")
    assert result["convs"] == 53
    assert result["gmac_per_clip"] == pytest.approx(16.4146, abs=1e-4)


def test_single_conv_by_hand():
    conv = nn.Conv3d(3, 8, (3, 5, 5), stride=(1, 2, 2), padding=(1, 2, 2), bias=False)
    macs = count_macs(nn.Sequential(conv), torch.zeros(1, 3, 4, 10, 10))
    # output 8 x 4 x 5 x 5, each output 3 x 3 x 5 x 5 MACs
    assert macs == {"0": 8 * 4 * 5 * 5 * 3 * 3 * 5 * 5}
