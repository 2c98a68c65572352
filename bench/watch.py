"""Latency and sustainable frame rate of `vad watch`, per backbone (1 centre crop, full-size untrained detector).

1. Throughput: a generated 320x240 clip read as fast as it decodes (the decode thread waits for the model, nothing
   dropped): seconds per snippet -> the highest frame rate kept up with = 16 / (seconds per snippet).
2. Latency: the same clip paced in real time (--realtime) at about 70% of that rate: latency_ms per snippet (last
   frame decoded -> score written) p50/p95, with the default one-snippet lookahead and with --no-lookahead, and the
   snippets dropped.
3. Causal vs offline: the raw scores of the trailing window against the whole-video ones, without and with
   self-attention (features only, no backbone).

i3d-r50 runs the golden generator's weights (speed does not depend on weight values); i3d-inception the real
weights when `vad weights fetch i3d-inception` has put them in weights/, else it is skipped, saying so.
`--runtimes torch,onnxruntime,openvino` repeats parts 1 and 2 per runtime (the watch API's ScoreConfig.runtime;
onnxruntime and OpenVINO run the export of the model that vad makes once, into the data folder, when the scorer
loads, outside the timing); the rows name their runtime (bench/RUNTIMES.md). `--model` watches with a given
model.pt or `vad export` folder (an int8 one too) instead of the generated models; `--backbones` is then ignored.
`--no-compare` leaves part 3 out.

    python bench/watch.py [--snippets 12] [--device cpu] [--backbones i3d-r50,i3d-inception] [--runtimes torch]
                          [--model MODEL.pt|EXPORT_DIR] [--no-compare]
"""
from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from score import models  # noqa: E402

from vad.hardware import cpu_description  # noqa: E402

from decode import make_h264  # noqa: E402


def run(clip: Path, scorer, **config) -> tuple[list[dict], float]:
    from vad.pipeline.watch import watch

    out = io.StringIO()
    started = time.perf_counter()
    watch(str(clip), scorer=scorer, stdout=out, handle_signals=False, threshold=1.0, **config)
    rows = [json.loads(line) for line in out.getvalue().splitlines()]
    return [r for r in rows if "event" not in r], time.perf_counter() - started


def latency(rows: list[dict]) -> dict:
    values = np.array([r["latency_ms"] for r in rows[1:]])  # the first snippet also pays the warm-up
    return {"latency_ms_p50": round(float(np.percentile(values, 50)), 1), "latency_ms_p95": round(float(np.percentile(values, 95)), 1),
            "dropped": rows[-1]["dropped_snippets"] if rows else 0, "scored": len(rows)}


def causal_vs_offline(snippets: int = 128, windows: tuple[int, ...] = (8, 32)) -> list[dict]:
    """How far the causal window's raw scores are from the offline ones (the whole video at once), on features
    that drift slowly with an 'anomalous' stretch: the full-size detector without attention, and with attention and
    its gate opened (BatchNorm weight 1; a closed gate, as at initialisation, is the no-attention detector)."""
    import torch

    from vad.extract.stream import StreamSnippet
    from vad.models.detector import build_detector
    from vad.models.inference import score_video
    from vad.pipeline.watch import WatchConfig, Window

    rng = np.random.default_rng(0)
    drift = rng.normal(0, 1, (snippets, 1024)).cumsum(0) / np.sqrt(np.arange(1, snippets + 1))[:, None]
    features = np.abs(drift + rng.normal(0, 0.5, drift.shape)).astype(np.float32)
    features[snippets // 2:snippets // 2 + 15] += 0.8
    features = features[:, None, :]  # [T, crops=1, D]
    out = []
    for attention in (False, True):
        torch.manual_seed(0)
        detector = build_detector(feature_dim=1024, attention=attention).eval()
        if attention:
            with torch.no_grad():
                detector.gate.weight.fill_(1.0)
        offline = score_video(detector, features)
        for window in windows:
            for lookahead in (True, False):
                online = Window(detector, WatchConfig(window=window, lookahead=lookahead, correction=False))
                pairs = [p for t in range(snippets) for p in online.push(StreamSnippet(t, 16 * t, 16 * t + 16, None, 0.0, 25.0), features[t])]
                causal = np.array([raw for _, raw in pairs + online.finish()])
                diff = np.abs(causal - offline)
                out.append({"attention": attention, "window": window, "lookahead": lookahead, "snippets": snippets,
                            "max_abs_diff": float(f"{diff.max():.2e}"), "mean_abs_diff": float(f"{diff.mean():.2e}")})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--snippets", type=int, default=12, help="snippets in the generated clip")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--backbones", default="i3d-r50,i3d-inception")
    parser.add_argument("--window", type=int, default=32)
    parser.add_argument("--compare-only", action="store_true", help="only part 3 (about a minute on 2 CPU cores)")
    parser.add_argument("--no-compare", action="store_true", help="leave part 3 out")
    parser.add_argument("--runtimes", "--runtime", default="torch", help="comma list of --runtime values: auto, torch, onnxruntime, openvino")
    parser.add_argument("--model", type=Path, default=None, help="watch with this model.pt or export folder instead of generated models")
    parser.add_argument("--profile", default="reference", help=argparse.SUPPRESS)  # the generated models' (score.models)
    args = parser.parse_args()

    import torch

    from vad.pipeline.score import ScoreConfig, Scorer

    if args.compare_only:
        print(json.dumps({"bench": "watch", "causal_vs_offline": causal_vs_offline()}, indent=1))
        return
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for backbone, model, weights, origin, runtime in [(*m, r) for m in models(args, tmp) for r in args.runtimes.split(",")]:
            if model is None:
                results.append({"backbone": backbone, "skipped": origin})
                continue
            scorer = Scorer.from_config(ScoreConfig(model=model, weights=weights, device=args.device, batch_size=1, decoder="pyav",
                                                    runtime=runtime))
            fast = make_h264(tmp / "fast.mp4", 320, 240, n_frames=16 * args.snippets, fps=25)
            rows, wall = run(fast, scorer, window=args.window)
            per_snippet = wall / len(rows)
            max_fps = 16 / per_snippet
            paced_fps = max(1, int(max_fps * 0.7))
            paced = make_h264(tmp / "paced.mp4", 320, 240, n_frames=16 * args.snippets, fps=paced_fps)
            with_lookahead, _ = run(paced, scorer, window=args.window, realtime=True)
            without, _ = run(paced, scorer, window=args.window, realtime=True, lookahead=False)
            results.append({"backbone": backbone, "runtime": scorer.config.runtime, "model": str(args.model) if args.model else "generated",
                            "weights": origin, "crops": 1, "window": args.window,
                            "s_per_snippet": round(per_snippet, 3), "max_fps_kept_up": round(max_fps, 1), "paced_fps": paced_fps,
                            "lookahead": latency(with_lookahead), "no_lookahead": latency(without)})
    print(json.dumps({"bench": "watch", "device": args.device, **cpu_description(), "cpu_count": os.cpu_count(),
                      "torch_threads": torch.get_num_threads(), "load_average_1min_at_end": round(os.getloadavg()[0], 2),
                      "frame_size": "320x240", "results": results, **({} if args.no_compare else {"causal_vs_offline": causal_vs_offline()})}, indent=1))


if __name__ == "__main__":
    main()
