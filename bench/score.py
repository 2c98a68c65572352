"""Cost of `vad score`: seconds of compute per minute of video, and peak RSS, per backbone.

Runs the real command in a subprocess on a generated 320x240 H.264 clip (25 fps, the
surveillance datasets' size) with a centre-crop model of each backbone. The detector is an
untrained full-size ARMSDetector saved with models/io.py: its speed does not depend on
training. i3d-r50 uses the golden generator's weights (no download; speed does not depend on
weight values); i3d-inception uses the real weights (`vad weights fetch i3d-inception`) and is
skipped, saying so, when they are missing. A one-snippet clip measures the fixed start-up cost
(imports, building and loading the backbone), reported apart from the per-minute figure.
Each backbone runs twice: `--exact` (the plain network, as before the inference form) and the
default fast form, both at `--precision` (default auto: what `vad score` picks on this machine).

`--runtimes torch,onnxruntime,openvino` repeats each measurement with `vad score --runtime R`
(bench/RUNTIMES.md); the JSON rows name their runtime. onnxruntime and OpenVINO run the fast form
only, from the export `vad score` makes of a model.pt once, into the data folder: a first command
on the one-snippet clip makes it before anything is timed (its wall time: `first_run_s`).
`--model` scores a given model.pt or `vad export` folder (an int8 one too) instead of the
generated models; `--backbones` is then ignored.

    python bench/score.py [--seconds 20] [--device cpu] [--backbones i3d-r50,i3d-inception] [--precision auto]
                          [--runtimes torch] [--model MODEL.pt|EXPORT_DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from decode import make_h264  # noqa: E402

FPS = 25


def run(command: list[str]) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds, peak RSS in MiB of the child); CPU time is the figure that
    holds up when other processes share the cores."""
    started = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)  # this child's own rusage
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(command)} failed")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss // 1024


def make_model(path: Path, backbone: str, weights: Path, profile: str) -> Path:
    import torch

    from vad.extract.backbones import get_backbone
    from vad.extract.runner import ExtractConfig, cache_config
    from vad.models.detector import build_detector
    from vad.models.io import save_model
    from vad.weights import sha256_file

    spec = get_backbone(backbone)
    torch.manual_seed(0)
    feature = cache_config(spec, ExtractConfig(backbone=backbone, crops=1, profile=profile), sha256_file(weights))
    save_model(path, build_detector(feature_dim=spec.feature_dim), feature=feature, phase="untrained")
    return path


def backbone_weights(backbone: str, tmp: Path) -> tuple[Path | None, str]:
    """(weights file or None, where it came from)."""
    if backbone == "i3d-r50":
        from golden_r50 import write_weights

        return write_weights(tmp / "r50.pth"), "golden generator (tests/golden_r50.py)"
    from vad.extract.backbones import get_backbone
    from vad.weights import WeightsError, resolve

    try:
        return resolve(get_backbone(backbone).weights), "weights/ (vad weights fetch i3d-inception)"
    except WeightsError as exc:
        return None, str(exc)


def models(args, tmp: Path):
    """(backbone, model file or export folder or None, weights file or None, where the weights came from) to score."""
    if args.model is not None:
        from vad.pipeline.export import is_export, read_export

        if is_export(args.model):
            exported = read_export(args.model)
            backbone = exported.manifest["backbone"]["name"]
            precision = exported.manifest["networks"]["backbone"].get("precision", "fp32")
            yield backbone, args.model, None, f"inside the {exported.format} export ({precision} backbone)"
            return
        from vad.models.io import load_model

        backbone = load_model(args.model, "cpu")[1]["feature"]["backbone"]
        weights, origin = backbone_weights(backbone, tmp)
        yield backbone, (args.model if weights else None), weights, origin
        return
    for backbone in args.backbones.split(","):
        weights, origin = backbone_weights(backbone, tmp)
        yield backbone, (make_model(tmp / f"{backbone}.pt", backbone, weights, args.profile) if weights else None), weights, origin


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the generated clip (25 fps)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--backbones", default="i3d-r50,i3d-inception")
    parser.add_argument("--profile", default="reference", choices=["reference", "direct"], help="feature profile recorded in the model")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"])
    parser.add_argument("--forms", default="exact,fast", help="exact (--exact), fast (the default inference form)")
    parser.add_argument("--runtimes", "--runtime", default="torch", help="comma list of vad score --runtime values: auto, torch, "
                                                                          "onnxruntime, openvino (non-torch runtimes: the fast form only)")
    parser.add_argument("--model", type=Path, default=None, help="score this model.pt or export folder instead of generated models")
    args = parser.parse_args()
    vad = str(Path(sys.executable).with_name("vad"))
    n_frames = int(round(args.seconds * FPS))
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        clip = make_h264(tmp / "clip.mp4", 320, 240, n_frames=n_frames, fps=FPS)
        short = make_h264(tmp / "short.mp4", 320, 240, n_frames=16, fps=FPS)
        for backbone, model, weights, origin in models(args, tmp):
            if model is None:
                results.append({"backbone": backbone, "skipped": origin})
                continue
            for runtime in args.runtimes.split(","):
                for form in args.forms.split(","):
                    if runtime not in ("torch", "auto") and form == "exact":
                        continue  # an export runs the form it was exported in
                    command = [vad, "score", "--model", str(model), *(["--weights", str(weights)] if weights else []), "--device",
                               args.device, "--batch-size", str(args.batch_size), "--precision", args.precision, "--runtime", runtime,
                               "-q", *(["--exact"] if form == "exact" else [])]
                    first = {}
                    if runtime not in ("torch", "auto") and not Path(model).is_dir():
                        first["first_run_s"] = round(run([*command, str(short)])[0], 2)  # makes the export, outside the timing
                    results.append(measure(command, short, clip, n_frames) | first | {
                        "backbone": backbone, "runtime": runtime, "model": str(args.model) if args.model else "generated",
                        "network": form, "weights": origin, "crops": 1, "profile": args.profile, "precision": args.precision})
    import torch

    print(json.dumps({"bench": "score", "device": args.device, "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                      "load_average_1min_at_end": round(os.getloadavg()[0], 2),
                      "frame_size": "320x240", "fps": FPS, "results": results}, indent=1))


def measure(command: list[str], short: Path, clip: Path, n_frames: int) -> dict:
    """Seconds per minute of video of one `vad score` command line, start-up apart."""
    startup, startup_cpu, _ = run([*command, str(short)])
    wall, cpu, peak = run([*command, str(clip)])
    minutes = n_frames / FPS / 60
    return {
        "video_s": round(n_frames / FPS, 2), "snippets": -(-n_frames // 16), "wall_s": round(wall, 2),
        "s_per_min_video": round(wall / minutes, 2),
        "startup_s": round(startup, 2),  # one-snippet clip: imports + backbone load + one snippet
        "s_per_min_video_excl_startup": round((wall - startup) / minutes, 2),
        "cpu_s_per_min_video": round(cpu / minutes, 2),
        "cpu_s_per_min_video_excl_startup": round((cpu - startup_cpu) / minutes, 2),
        "peak_rss_mib": peak,
    }


if __name__ == "__main__":
    main()
