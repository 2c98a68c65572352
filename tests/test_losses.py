"""Every loss against values computed by hand (eq. 1-5)."""
from __future__ import annotations

import math

import pytest
import torch

from vad.models.losses import LOSSES, abnormal_ratio, ar_mil_loss, ms_mil_top1_loss, ms_mil_topk_loss, phase_loss, pseudo_label_bce

t = lambda rows: torch.tensor(rows, dtype=torch.float64)


def test_abnormal_ratio_eq3():
    assert abnormal_ratio(t([[0.2, 0.4, 0.6, 0.8], [0.0, 0.0, 0.0, 1.0]])).tolist() == pytest.approx([0.5, 0.25])


def test_ar_mil_eq4_single_lambda():
    # r+ = 0.1, r- = 0.1, lambda 0.3, alpha = 1/0.3: 0.1 + (0.3 - 0.1) / 0.3
    loss = ar_mil_loss(t([[0.1, 0.1, 0.1, 0.1]]), t([[0.2, 0.0, 0.2, 0.0]]), 0.3)
    assert float(loss) == pytest.approx(0.1 + 0.2 / 0.3)


def test_ar_mil_eq4_satisfied_ratio_leaves_only_normal_term():
    loss = ar_mil_loss(t([[0.5, 0.5, 0.0, 0.0]]), t([[0.0, 0.0, 0.0, 0.4]]), 0.2)
    assert float(loss) == pytest.approx(0.1)


def test_ar_mil_eq4_per_video_lambda():
    # bag 1: r+ 0.1 < 0.2 -> 0.1 / 0.2 = 0.5; bag 2: r+ 0.6 >= 0.5 -> 0; mean 0.25; r- mean (0.1 + 0.3) / 2
    abnormal = t([[0.1, 0.1], [0.6, 0.6]])
    normal = t([[0.1, 0.1], [0.3, 0.3]])
    loss = ar_mil_loss(abnormal, normal, torch.tensor([0.2, 0.5], dtype=torch.float64))
    assert float(loss) == pytest.approx(0.25 + 0.2)


def test_ms_mil_top1_eq1():
    # pair 1: 1 - 0.9 + 0.4 = 0.5; pair 2: 1 - 1.0 + 0.0 = 0
    loss = ms_mil_top1_loss(t([[0.1, 0.9, 0.3], [1.0, 0.0, 0.0]]), t([[0.2, 0.4, 0.1], [0.0, 0.0, 0.0]]))
    assert float(loss) == pytest.approx(0.25)


def test_ms_mil_topk_eq2():
    # top-3 of (0.9, 0.8, 0.1, 0.7) = 0.8; 1 - 0.8 + 0.3 = 0.5
    loss = ms_mil_topk_loss(t([[0.9, 0.8, 0.1, 0.7]]), t([[0.3, 0.0, 0.1, 0.2]]), k=3)
    assert float(loss) == pytest.approx(0.5)


def test_ms_mil_needs_pairs():
    with pytest.raises(ValueError, match="pairs"):
        ms_mil_top1_loss(t([[0.1]]), t([[0.1], [0.2]]))


def test_pseudo_label_bce_and_phase_loss_eq5():
    scores = t([[0.8, 0.5, 0.3]])
    labels = torch.tensor([[1, -1, 0]])
    bce = (-math.log(0.8) - math.log(0.7)) / 2
    assert float(pseudo_label_bce(scores, labels)) == pytest.approx(bce)
    assert float(phase_loss(torch.tensor(0.2, dtype=torch.float64), scores, labels, beta=0.5)) == pytest.approx(0.2 + 0.5 * bce)


def test_pseudo_label_bce_without_labels_is_zero():
    assert float(pseudo_label_bce(t([[0.3, 0.6]]), torch.tensor([[-1, -1]]))) == 0.0


def test_ar_mil_reaches_every_snippet_top1_only_the_maximum():
    """Sec. III-D: AR-MIL back-propagates to all snippets of an abnormal video below lambda."""
    abnormal = t([[0.1, 0.2, 0.05, 0.3]]).requires_grad_()
    ar_mil_loss(abnormal, t([[0.0, 0.0, 0.0, 0.0]]), 0.5).backward()
    assert (abnormal.grad != 0).all()
    abnormal = t([[0.1, 0.2, 0.05, 0.3]]).requires_grad_()
    ms_mil_top1_loss(abnormal, t([[0.0, 0.0, 0.0, 0.0]])).backward()
    assert (abnormal.grad != 0).tolist() == [[False, False, False, True]]


def test_every_loss_name_reaches_its_equation():
    """The registry calls each equation with only the settings it takes: lambda for eq. 4, k for eq. 2."""
    abnormal, normal = t([[0.9, 0.8, 0.1, 0.7], [0.2, 0.1, 0.0, 0.3]]), t([[0.3, 0.0, 0.1, 0.2], [0.1, 0.1, 0.1, 0.1]])
    lam = t([0.5, 0.2])
    assert list(LOSSES) == ["ar", "ms-top1", "ms-topk"]
    expected = {"ar": (ar_mil_loss, ar_mil_loss(abnormal, normal, lam)), "ms-top1": (ms_mil_top1_loss, ms_mil_top1_loss(abnormal, normal)),
                "ms-topk": (ms_mil_topk_loss, ms_mil_topk_loss(abnormal, normal, k=2))}
    for name, (fn, value) in expected.items():
        assert LOSSES[name].fn is fn and LOSSES[name].name == name
        assert torch.equal(LOSSES[name](abnormal, normal, lam=lam, k=2), value)
    assert not torch.equal(LOSSES["ms-topk"](abnormal, normal, lam=lam, k=3), expected["ms-topk"][1])  # k reaches eq. 2


def test_an_unknown_loss_is_one_line_naming_the_known_ones():
    from vad.errors import ConfigError
    from vad.models.config import make_config

    with pytest.raises(ConfigError) as caught:
        make_config(schedule="traditional", loss="hinge")
    assert str(caught.value) == "train: setting 'loss' (--loss): 'hinge' is not one of ar, ms-top1, ms-topk"
