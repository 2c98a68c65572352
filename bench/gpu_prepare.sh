#!/usr/bin/env bash
# Run HERE (the machine with PyPI access) before bench/extract_gpu.sh goes to an offline GPU
# machine that has python3 3.12 and torch but no PyAV: fetches the wheels vad needs there into
# .whl/ and copies the small golden i3d-r50 files into .gpu_carry/ (both git-ignored, about
# 37 MB together). Then run on the GPU machine with carry [".whl", ".gpu_carry"]:
#   bash bench/extract_gpu.sh "$OUT"
set -euo pipefail
cd "$(dirname "$0")/.."
for ignored in /.whl/ /.gpu_carry/; do
  grep -qxF "$ignored" .git/info/exclude 2>/dev/null || echo "$ignored" >>.git/info/exclude
done
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl av==18.1.0
mkdir -p .gpu_carry/i3d-r50
golden=../shared/reference/golden/i3d-r50
cp "$golden"/{i3d_r50_kinetics.keys.json,weights_check.json,clip40.mp4,clip40_feats.npy} .gpu_carry/i3d-r50/
du -sh .whl .gpu_carry >&2
