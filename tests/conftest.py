"""Session fixtures shared by the test modules."""
from __future__ import annotations

from pathlib import Path

import pytest

from golden_r50 import write_weights


@pytest.fixture(scope="session")
def r50_weights_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The golden generator's i3d-r50 weights (golden/i3d-r50/README.md), saved once per session."""
    return write_weights(tmp_path_factory.mktemp("weights") / "i3d_r50_golden.pth")
