#!/usr/bin/env bash
# Run HERE (the machine with PyPI access) before bench/extract_gpu.sh goes to an offline GPU
# machine that has python3 3.12 and torch but no PyAV: fetches the wheels vad needs there into
# .whl/ (git-ignored, about 36 MB). The golden i3d-r50 files travel with the checkout
# (tests/data/golden/i3d-r50). Then run on the GPU machine with carry [".whl"]:
#   bash bench/extract_gpu.sh "$OUT"
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qxF /.whl/ .git/info/exclude 2>/dev/null || echo /.whl/ >>.git/info/exclude
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl av==18.1.0
# bench/precision.py and the golden weights (tests/golden_r50.py) read tests/data, part of the checkout
test -f tests/data/golden/i3d-r50/clip40_feats.npy || { echo "tests/data/golden/i3d-r50 is missing from this checkout" >&2; exit 1; }
du -sh .whl >&2
