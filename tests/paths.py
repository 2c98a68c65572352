"""Where the tests' data lives: tests/data inside the checkout (tests/data/README.md says what each file is)."""
from __future__ import annotations

from pathlib import Path

REFERENCE = Path(__file__).resolve().parent / "data"
GOLDEN_R50 = REFERENCE / "golden" / "i3d-r50"
GOLDEN_INC = REFERENCE / "golden" / "i3d-inception"
VIDEOS = REFERENCE / "videos"
PRECISION = REFERENCE / "precision"
