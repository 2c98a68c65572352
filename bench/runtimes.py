"""Backbone speed and parity per runtime: PyTorch against onnxruntime, OpenVINO fp32 and OpenVINO int8.

For each backbone a centre-crop model file is written (an untrained full-size detector, as in
bench/score.py; `--model` puts a trained one in its backbone's place) and exported with
pipeline.export.export_model into `--work`: ONNX (`vad export --format onnx`), and, for int8,
OpenVINO with `--int8` calibrated on the `--calibrate` videos (without `--calibrate` the int8 row
is skipped, saying so). OpenVINO fp32 runs the ONNX export's backbone converted to IR with fp32
weights, as `vad export --format openvino` converts it. Exports already in `--work` are reused.

Each runtime runs the network as vad runs it (vad.runtimes.load_network; torch: the engine's
`load_backbone`, the default inference form) on float32 clips [batch, 3, 16, 224, 224]. The
runtimes take turns for `--rounds` rounds (so a neighbour's load on a shared machine hits them
alike), each turn `--warmup` passes, then `--passes` timed passes; clips/s = batch / the median
pass of all rounds (the best round's median is reported too). Parity: the
max abs deviation from the torch network's features on one fixed random clip (uint8 noise,
normalised as scoring does), relative to max|torch|; int8 also reports the held-out deviation
on real snippets that `vad export --int8` recorded in its manifest.

Weights: i3d-inception uses the real weights (`vad weights fetch i3d-inception`; skipped when
missing); i3d-r50 the golden generator's (tests/golden_r50.py): speed does not depend on weight
values, parity does a little (the int8 row of i3d-r50 is calibrated for those generated weights).
On CUDA only torch and onnxruntime (CUDAExecutionProvider, `pip install onnxruntime-gpu`) apply.

    python bench/runtimes.py [--backbones i3d-inception,i3d-r50] [--runtimes torch,onnxruntime,openvino,openvino-int8]
                             [--device cpu] [--threads 2] [--batches 1,4] [--warmup 1] [--passes 3] [--rounds 3]
                             [--calibrate VIDEO_OR_FOLDER ...] [--snippets 100] [--held-out 20]
                             [--model MODEL.pt] [--work DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from score import backbone_weights, make_model  # noqa: E402

from vad.hardware import cpu_description  # noqa: E402

RUNTIMES = ("torch", "onnxruntime", "openvino", "openvino-int8")
CUDA_RUNTIMES = ("torch", "onnxruntime")


def version(package: str) -> str | None:
    try:
        from importlib.metadata import version as installed

        return installed(package)
    except Exception:
        return None


def model_backbone(model: Path) -> str | None:
    from vad.models.io import load_model

    _, payload = load_model(model, "cpu")
    return (payload.get("feature") or {}).get("backbone")


def exports(tag: str, model: Path, weights: Path, wanted: list[str], args, work: Path) -> tuple[dict, dict]:
    """{runtime: network file} for the runtimes in `wanted` besides torch, and notes (skips, the int8 manifest).
    `tag` names the model's folders in `work` (the backbone; with the model's sha256 for a --model)."""
    from vad.pipeline.export import ExportConfig, export_model, is_export, read_export

    files, notes = {}, {}
    if {"onnxruntime", "openvino"} & set(wanted):
        folder = work / f"{tag}-onnx"
        started = time.perf_counter()
        exported = read_export(folder) if is_export(folder) else export_model(model, folder, ExportConfig(format="onnx", weights=weights), progress=False)
        notes["onnx_export"] = {"folder": str(folder), "form": exported.manifest["backbone"]["form"],
                                "export_check_relative": exported.manifest["networks"]["backbone"]["check"]["relative"],
                                "seconds": round(time.perf_counter() - started, 1)}
        files["onnxruntime"] = exported.path("backbone")
        if "openvino" in wanted:
            import openvino as ov

            xml = work / f"{tag}-openvino-fp32" / "backbone.xml"
            if not (xml.is_file() and xml.with_suffix(".bin").is_file()):
                xml.parent.mkdir(parents=True, exist_ok=True)
                ov.save_model(ov.convert_model(exported.path("backbone")), xml, compress_to_fp16=False)
            files["openvino"] = xml
    if "openvino-int8" in wanted:
        if not args.calibrate:
            notes["openvino-int8"] = "skipped: int8 needs footage to calibrate on (--calibrate VIDEOS)"
        else:
            folder = work / f"{tag}-openvino-int8-s{args.snippets}-h{args.held_out}"
            started = time.perf_counter()
            exported = read_export(folder) if is_export(folder) else export_model(
                model, folder, ExportConfig(format="openvino", weights=weights, int8=True, calibrate=tuple(args.calibrate),
                                            snippets=args.snippets, held_out=args.held_out), progress=False)
            entry = exported.manifest["networks"]["backbone"]
            notes["int8_export"] = {"folder": str(folder), "seconds": round(time.perf_counter() - started, 1),
                                    "calibration_snippets": entry["calibration"]["snippets"],
                                    "calibration_videos": len(entry["calibration"]["videos"]),
                                    "held_out_deviation": entry["deviation"], "quantization": entry["quantization"]["tool"]}
            files["openvino-int8"] = exported.path("backbone")
    return files, notes


def load(runtime: str, spec, weights: Path, files: dict, device: torch.device):
    from vad.extract.engine import load_backbone
    from vad.runtimes import load_network

    if runtime == "torch":
        return load_backbone(spec, weights, device)[0]
    return load_network("openvino" if runtime.startswith("openvino") else runtime, files[runtime], device)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_passes(network, x: torch.Tensor, device: torch.device, warmup: int, passes: int) -> list[float]:
    with torch.inference_mode():
        for _ in range(warmup):
            network(x)
        sync(device)
        times = []
        for _ in range(passes):
            started = time.perf_counter()
            network(x)
            sync(device)
            times.append(time.perf_counter() - started)
    return times


def measure_backbone(backbone: str, args, device: torch.device, wanted: list[str], work: Path) -> dict:
    from vad.extract.backbones import get_backbone

    spec = get_backbone(backbone)
    weights, origin = backbone_weights(backbone, work)
    if weights is None:
        return {"backbone": backbone, "skipped": origin}
    tag = backbone
    if args.model and model_backbone(args.model) == backbone:
        from vad.weights import sha256_file

        model, model_origin = Path(args.model), str(args.model)
        tag = f"{backbone}-{sha256_file(model)[:12]}"
    else:
        model = work / f"{backbone}.pt"
        if not model.is_file():
            make_model(model, backbone, weights, "reference")
        model_origin = "untrained full-size detector (bench/score.py make_model)"
    files, notes = exports(tag, model, weights, wanted, args, work)
    generator = torch.Generator().manual_seed(0)
    clip = torch.randint(0, 256, (1, 16, 224, 224, 3), dtype=torch.uint8, generator=generator)
    from vad.extract.preprocess import to_network_layout

    fixed = spec.normalise(to_network_layout(clip[:, None])).flatten(0, 1).float()  # [1, 3, 16, 224, 224]
    rows, networks, reference = {}, {}, None
    for runtime in wanted:
        if runtime not in files and runtime != "torch":
            rows[runtime] = {"runtime": runtime, "skipped": notes.get(runtime, "no export")}
            continue
        networks[runtime] = network = load(runtime, spec, weights, files, device)
        with torch.inference_mode():
            out = network(fixed.to(device)).float().cpu().numpy()
        if runtime == "torch":
            reference = out
        row = rows[runtime] = {"runtime": runtime, "precision": "int8" if runtime.endswith("int8") else "fp32"}
        if reference is not None:
            max_ref = float(np.abs(reference).max())
            row["parity_max_abs"] = float(f"{np.abs(out - reference).max():.3e}")
            row["parity_relative"] = float(f"{np.abs(out - reference).max() / max(max_ref, 1e-12):.3e}")
            cosine = float((out * reference).sum() / max(np.linalg.norm(out) * np.linalg.norm(reference), 1e-12))
            row["parity_cosine"] = round(cosine, 7)
    for batch in args.batches:  # runtimes alternate round by round, so a neighbour's load hits all of them alike
        x = fixed.repeat(batch, 1, 1, 1, 1).to(device)
        times: dict[str, list[list[float]]] = {runtime: [] for runtime in networks}
        for _ in range(args.rounds):
            for runtime, network in networks.items():
                times[runtime].append(time_passes(network, x, device, args.warmup, args.passes))
        for runtime, rounds in times.items():
            median = statistics.median([t for one in rounds for t in one])
            best = min(statistics.median(one) for one in rounds)
            row = rows[runtime]
            row[f"batch{batch}_clips_per_s"] = round(batch / median, 3)  # the median pass over all rounds
            row[f"batch{batch}_best_round_clips_per_s"] = round(batch / best, 3)  # the round with the fastest median
            row[f"batch{batch}_pass_s"] = [[round(t, 4) for t in one] for one in rounds]
    for runtime, row in rows.items():
        if runtime in networks:
            print(f"{backbone} {runtime}: " + ", ".join(f"batch {b} {row[f'batch{b}_clips_per_s']} clips/s" for b in args.batches)
                  + (f", parity {row['parity_relative']:.1e}" if "parity_relative" in row else ""), file=sys.stderr)
    rows = list(rows.values())
    networks.clear()
    return {"backbone": backbone, "weights": origin, "model": model_origin, **notes, "results": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbones", default="i3d-inception,i3d-r50")
    parser.add_argument("--runtimes", default=None, help=f"comma list of {', '.join(RUNTIMES)}; default: all (on cuda: torch,onnxruntime)")
    parser.add_argument("--runtime", dest="runtimes", help="alias of --runtimes")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (cuda: torch and onnxruntime only)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads, also given to onnxruntime and OpenVINO (default: torch's)")
    parser.add_argument("--batches", default="1,4", help="clips per pass to time")
    parser.add_argument("--warmup", type=int, default=1, help="untimed passes before each turn")
    parser.add_argument("--passes", type=int, default=3, help="timed passes per runtime, batch and round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds in which the runtimes take turns; the median pass of all counts")
    parser.add_argument("--calibrate", nargs="+", type=Path, default=None, help="videos or folders to calibrate int8 on (no int8 row without)")
    parser.add_argument("--snippets", type=int, default=100, help="int8 calibration snippets (vad export's default: 300)")
    parser.add_argument("--held-out", type=int, default=20, help="held-out snippets for the int8 deviation (vad export's default: 50)")
    parser.add_argument("--model", type=Path, default=None, help="a trained model.pt to export in place of the generated one of its backbone")
    parser.add_argument("--work", type=Path, default=None, help="folder for exports and weights, reused between runs (default: a temporary one)")
    args = parser.parse_args()
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.backends.cuda.matmul.allow_tf32 = False  # true fp32, as extraction runs (configure_backends)
    torch.backends.cudnn.allow_tf32 = False
    wanted = (args.runtimes or ",".join(CUDA_RUNTIMES if device.type == "cuda" else RUNTIMES)).split(",")
    unknown = [r for r in wanted if r not in RUNTIMES]
    if unknown:
        parser.error(f"--runtimes: unknown {unknown}; choose from {', '.join(RUNTIMES)}")
    if device.type == "cuda" and set(wanted) - set(CUDA_RUNTIMES):
        parser.error("on cuda only torch and onnxruntime apply (OpenVINO runs on the CPU)")
    if "torch" in wanted:
        wanted.remove("torch")
    wanted.insert(0, "torch")  # the parity reference, always first
    args.batches = [int(b) for b in args.batches.split(",")]
    with tempfile.TemporaryDirectory() as scratch:
        work = args.work or Path(scratch)
        work.mkdir(parents=True, exist_ok=True)
        results = [measure_backbone(name, args, device, wanted, work) for name in args.backbones.split(",")]
    providers = None
    try:
        import onnxruntime

        providers = onnxruntime.get_available_providers()
    except ImportError:
        pass
    print(json.dumps({"bench": "runtimes", "device": str(device),
                      "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu x{os.cpu_count()}",
                      **cpu_description(), "torch_threads": torch.get_num_threads(),
                      "versions": {p: version(p) for p in ("torch", "onnxruntime", "onnxruntime-gpu", "openvino", "nncf", "onnx")},
                      "onnxruntime_providers": providers, "warmup": args.warmup, "passes": args.passes, "rounds": args.rounds,
                      "load_average_1min_at_end": round(os.getloadavg()[0], 2), "results": results}, indent=1))


if __name__ == "__main__":
    main()
