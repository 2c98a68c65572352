"""Where the shared reference data (golden outputs, sample videos) lives: ../shared/reference."""
from __future__ import annotations

from pathlib import Path

REFERENCE = Path(__file__).resolve().parents[1].parent / "shared" / "reference"
GOLDEN_R50 = REFERENCE / "golden" / "i3d-r50"
GOLDEN_INC = REFERENCE / "golden" / "i3d-inception"
VIDEOS = REFERENCE / "videos"
