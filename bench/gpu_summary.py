"""One JSON object from the files bench/extract_gpu.sh leaves in its output folder.

Per `vad extract` run: snippets/s, GPU utilisation (mean and median of nvidia-smi's 200 ms
samples inside the run's window, model loading included), achieved TFLOP/s (snippets/s x crops
x conv GFLOP per clip from bench/flops.py) and its fraction of the GPU's dense peak.

    python bench/gpu_summary.py OUT_DIR
"""
from __future__ import annotations

import csv
import json
import re
import statistics
import sys
from datetime import datetime
from pathlib import Path

PEAK_TFLOPS = {"fp32": 67.0, "bf16": 989.0, "fp16": 989.0}  # H100/H200 SXM dense datasheet figures


def read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def smi_samples(path: Path) -> list[tuple[float, float]]:
    """(epoch seconds, GPU utilisation %) of each sample."""
    samples = []
    if not path.is_file():
        return samples
    for row in csv.reader(path.read_text().splitlines()):
        try:
            stamp = datetime.strptime(row[0].strip(), "%Y/%m/%d %H:%M:%S.%f").timestamp()
            samples.append((stamp, float(row[1])))
        except (ValueError, IndexError):
            continue
    return samples


def main() -> None:
    out = Path(sys.argv[1])
    flops = read_json(out / "flops.json") or {"results": []}
    gflop = {r["backbone"]: r["gflop_per_clip"] for r in flops["results"]}
    samples = smi_samples(out / "smi.csv")
    phases = {}
    for line in (out / "phases.tsv").read_text().splitlines() if (out / "phases.tsv").is_file() else []:
        name, start, end, status = line.split("\t")
        phases[name] = (float(start), float(end), int(status))
    runs = []
    for name, (start, end, status) in phases.items():
        if not name.startswith("extract_"):
            continue
        row = {"run": name.removeprefix("extract_"), "exit": status, "wall_s": round(end - start, 1)}
        summary = read_json(out / f"{name}.json")
        match = re.match(r"(r50|inception)_(ucf|sh)_c(\d+)_(fp32|bf16|fp16)", row["run"])
        if summary and match:
            backbone = "i3d-r50" if match[1] == "r50" else "i3d-inception"
            crops, precision = int(match[3]), match[4]
            # the streaming rate leaves out model loading and worker start-up (seconds of a short run)
            rate = summary.get("streaming_snippets_per_s") or summary.get("snippets_per_s") or 0.0
            tflops = rate * crops * gflop.get(backbone, 0.0) / 1e3
            row.update({"backbone": backbone, "videos": "320x240" if match[2] == "ucf" else "856x480", "crops": crops,
                        "precision": precision, "snippets": summary.get("snippets"), "snippets_per_s": rate,
                        "snippets_per_s_with_startup": summary.get("snippets_per_s"), "startup_s": summary.get("startup_s"),
                        "tflops": round(tflops, 2), "fraction_of_peak": round(tflops / PEAK_TFLOPS[precision], 4)})
        util = [u for t, u in samples if start <= t <= end]
        if util:
            row["gpu_util_mean"] = round(statistics.fmean(util), 1)
            row["gpu_util_median"] = statistics.median(util)
        runs.append(row)
    summary = {
        "bench": "extract_gpu",
        "gpu": (out / "gpu.txt").read_text().strip() if (out / "gpu.txt").is_file() else None,
        "cpu_cores": (out / "nproc.txt").read_text().strip() if (out / "nproc.txt").is_file() else None,
        "peak_tflops_assumed": PEAK_TFLOPS,
        "inception_weights": (out / "inception_weights.txt").read_text().strip() if (out / "inception_weights.txt").is_file() else None,
        "flops": flops["results"],
        "network_ceiling": {k: read_json(out / f"network_{k}.json") for k in ("r50", "inception")},
        "precision_deviation": read_json(out / "precision.json"),
        "precision_deviation_cudnn_benchmark": read_json(out / "precision_cudnnbench.json"),
        "network_ceiling_no_cudnn_benchmark": read_json(out / "network_r50_nobench.json"),
        "extract": runs,
        "decode": read_json(out / "decode.json"),
        "train_ucf": read_json(out / "train_ucf.json"),
        "failed_phases": [name for name, (_, _, status) in phases.items() if status != 0],
    }
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
