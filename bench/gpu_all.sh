#!/usr/bin/env bash
# Training and scoring throughput on a GPU; run after (or instead of) bench/extract_gpu.sh, in its
# own device call: the full ucf preset alone is estimated at 4-6 minutes on an H100/H200.
#
# STATUS: ready, NOT yet run (written without a GPU).
#
#   bash bench/gpu_all.sh [OUT_DIR]      # expects the environment extract_gpu.sh sets up (VAD_PYTHON or .venv-gpu or python3)
# Writes OUT_DIR/train_ucf_full.json (ARMS ucf preset end to end: 6 iterations x 50 epochs on
# synthetic UCF-sized features, 1,610 videos x 10 crops x D=2048), OUT_DIR/train_steps.json
# (bench/train.py) and OUT_DIR/score.json (bench/score.py, s per minute of video), and prints them.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT_DIR=${1:-${OUT:-bench/gpu_out}}
mkdir -p "$OUT_DIR"
if [ -n "${VAD_PYTHON:-}" ]; then PY=$VAD_PYTHON; elif [ -x .venv-gpu/bin/python ]; then PY=.venv-gpu/bin/python; else PY=python3; fi
[ -d /tmp/site ] && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
"$PY" -c "import vad.models.trainer" 2>/dev/null || python3 -m pip install -q --no-index --no-deps --no-build-isolation -e . >&2
export PYTHONUNBUFFERED=1
timeout 420 "$PY" bench/train_ucf.py --device cuda --full >"$OUT_DIR/train_ucf_full.json" || echo '{"train_ucf_full": "failed or timed out"}' >"$OUT_DIR/train_ucf_full.json"
timeout 120 "$PY" bench/train.py --device cuda --steps 20 --warmup 3 >"$OUT_DIR/train_steps.json" || true
timeout 120 "$PY" bench/score.py --device cuda --seconds 60 --backbones i3d-r50,i3d-inception >"$OUT_DIR/score.json" || true
cat "$OUT_DIR/train_ucf_full.json" "$OUT_DIR/train_steps.json" "$OUT_DIR/score.json"
