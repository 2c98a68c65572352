"""Reproduce Table I/II of ARMS on the released features: one command per dataset.

    python bench/reproduce.py sh  --features SH_Train_ten_crop_i3d --test-features SH_Test_ten_crop_i3d
    python bench/reproduce.py ucf --features UCF_Train_ten_crop_i3d --test-features UCF_Test_ten_crop_i3d
    python bench/reproduce.py xd  --features RGB --test-features RGBTest

Runs the paper protocol through the `vad` command line (in this process), printing every command on stderr:
`vad cache import` (RTFM lists, 10-crop [T,10,2048] .npy; XD's 5 per-crop files grouped),
labels from the lists, `vad gt import`, `vad train --preset <dataset>` (ARMS; add
`--variants arms,ms-top1,ms-topk` for the baselines of Table V), `vad eval` with and without score
correction; then prints the Markdown row next to the paper's number (Tables I-III of the ARMS paper).

Lists and GT default to the copies of the public files in tests/data/annotations (RTFM's lists
and gt-sh.npy, UCF-Crime's Temporal_Anomaly_Annotation.txt, XD-Violence's annotations.txt and
UR-DMU's lists; tests/data/README.md says where each comes from); pass
--train-list/--test-list/--gt for your own copies. Every training flag of `vad train` can be
overridden (e.g. `--epochs 1 --iterations 3` for a smoke run).
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import logging
import shlex
import sys
from collections.abc import Callable
from pathlib import Path

from vad.pipeline.importers import CROP_SUFFIX, expand_inputs, video_id_of
from vad.tables import read_gt, write_labels

log = logging.getLogger("vad")

# The public lists and GT files, copied into the repository for the tests (tests/data/README.md).
ANNOTATIONS = Path(__file__).resolve().parents[1] / "tests" / "data" / "annotations"


@dataclasses.dataclass(frozen=True)
class Dataset:
    train_list: str  # relative to ANNOTATIONS
    test_list: str
    gt: str
    gt_format: str  # `vad gt import --format`
    suffixes: tuple[str, ...]  # --strip-suffix for features and GT names
    group_crops: bool  # XD ships one file per crop
    is_abnormal: Callable[[int, str, int], bool]  # (position in the train list, video id, --sh-train-abnormal) -> label
    metric: str  # the figure of Table I/II
    paper: dict[str, float]  # the paper's results with I3D RGB features


DATASETS: dict[str, Dataset] = {
    # RTFM's loader: the first 63 videos of the ShanghaiTech train list are the abnormal ones.
    "sh": Dataset("shanghaitech/shanghai-i3d-train-10crop.list", "shanghaitech/shanghai-i3d-test-10crop.list",
                  "shanghaitech/gt-sh.npy", "rtfm", ("_i3d",), False, lambda i, v, n: i < n, "auc",
                  {"ms-top1": 95.61, "ms-topk": 95.63, "arms": 97.48}),
    # UCF-Crime names its normal videos Normal_Videos...; ends read as exclusive (docs/method.md, Evaluation).
    "ucf": Dataset("ucf-crime/ucf-i3d.list", "ucf-crime/ucf-i3d-test.list", "ucf-crime/Temporal_Anomaly_Annotation.txt",
                   "ucf", ("_i3d",), False, lambda i, v, n: not v.startswith("Normal"), "auc",
                   {"ms-top1": 82.25, "ms-topk": 83.40, "arms": 85.79}),
    # XD-Violence: label_A marks a normal video.
    "xd": Dataset("xd-violence/XD_Train.list", "xd-violence/XD_Test.list", "xd-violence/annotations.txt",
                  "xd", (), True, lambda i, v, n: "label_A" not in v, "ap",
                  {"ms-top1": 78.00, "ms-topk": 79.04, "arms": 83.11}),
}

VARIANTS = {
    "arms": [],
    "ms-top1": ["--schedule", "traditional", "--loss", "ms-top1"],
    "ms-topk": ["--schedule", "traditional", "--loss", "ms-topk"],
}
TITLES = {"arms": "ARMS", "ms-top1": "Baseline (traditional, top-1)", "ms-topk": "Baseline (traditional, top-k)"}
TRAIN_FLAGS = ("epochs", "min_steps", "iterations", "lr", "batch_videos", "seed", "device")


def vad(*args: str) -> str:
    """Run one `vad` command line in this process (what a user types; no interpreter start-up per
    step) and return what it printed on stdout. A failing step ends the reproduction."""
    import click

    from vad.pipeline.cli import main as vad_main

    log.info("$ %s", shlex.join(["vad", *args]))
    captured = io.StringIO()
    try:
        with contextlib.redirect_stdout(captured):
            vad_main.main(args=list(args), prog_name="vad", standalone_mode=False)
    except click.ClickException as exc:
        exc.show()
        raise SystemExit(f"reproduce: `vad {args[0]}` failed (exit code {exc.exit_code})") from None
    return captured.getvalue()


def list_video_ids(list_path: Path, spec: Dataset, root: Path) -> list[str]:
    """Video ids of a list in its order (crops of one XD video collapse into one id)."""
    ids: list[str] = []
    for path in expand_inputs([str(list_path)], root):
        video = video_id_of(str(path), spec.suffixes)
        if spec.group_crops:
            match = CROP_SUFFIX.match(video)
            video = match["video"] if match else video
        if video not in ids:
            ids.append(video)
    return ids


def reproduce(dataset: str, features: Path, test_features: Path, work: Path, train_list: Path, test_list: Path, gt: Path,
              variants: list[str], train_overrides: dict, sh_train_abnormal: int = 63) -> list[dict]:
    spec = DATASETS[dataset]
    cache = work / "cache"
    common = ["--cache", str(cache), "--format", "rtfm", "--backbone", "i3d-r50", "-q"]
    common += [flag for s in spec.suffixes for flag in ("--strip-suffix", s)]
    common += ["--group-crops"] if spec.group_crops else []
    vad("cache", "import", str(train_list), "--root", str(features), *common)
    vad("cache", "import", str(test_list), "--root", str(test_features), *common)

    train_ids = list_video_ids(train_list, spec, features)
    write_labels(work / "train.csv", {v: int(spec.is_abnormal(i, v, sh_train_abnormal)) for i, v in enumerate(train_ids)})
    gt_args = ["gt", "import", str(gt), "--format", spec.gt_format, "--cache", str(cache), "--out", str(work / "gt.csv"), "-q"]
    gt_args += [flag for s in spec.suffixes for flag in ("--strip-suffix", s)]
    gt_args += ["--list", str(test_list)] if spec.gt_format == "rtfm" else []
    vad(*gt_args)
    intervals = read_gt(work / "gt.csv")
    test_ids = list_video_ids(test_list, spec, test_features)
    write_labels(work / "test.csv", {v: int(bool(intervals.get(v))) for v in test_ids})

    rows = []
    flags = [f for key, value in train_overrides.items() if value is not None
             for f in (f"--{key.replace('_', '-')}", str(value))]
    for variant in variants:
        run = work / f"run-{variant}"
        vad("train", "--cache", str(cache), "--labels", str(work / "train.csv"), "--preset", dataset, "--out", str(run),
            "-q", *VARIANTS[variant], *flags)
        evals = {}
        for corrected in (True, False):
            out = vad("eval", "--model", str(run / "model.pt"), "--cache", str(cache), "--labels", str(work / "test.csv"),
                      "--gt", str(work / "gt.csv"), "--json", "-q", *([] if corrected else ["--no-correction"]))
            evals[corrected] = json.loads(out)
        rows.append({"variant": variant, "corrected": evals[True], "raw": evals[False], "paper": spec.paper[variant]})
    return rows


def table(dataset: str, rows: list[dict]) -> str:
    spec = DATASETS[dataset]
    name = {"sh": "ShanghaiTech AUC", "ucf": "UCF-Crime AUC", "xd": "XD-Violence AP"}[dataset]
    lines = [f"| method | paper {name} (%) | ours, corrected | ours, no correction | AP trapezoid (corr.) | score gap |",
             "|---|---|---|---|---|---|"]
    for row in rows:
        c, r = row["corrected"], row["raw"]
        lines.append(f"| {TITLES[row['variant']]} | {row['paper']:.2f} | {100 * c[spec.metric]:.2f} | {100 * r[spec.metric]:.2f} | "
                     f"{100 * c['ap_trapezoid']:.2f} | {c['score_gap']:.3f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", choices=sorted(DATASETS), help="sh, ucf or xd")
    parser.add_argument("--features", required=True, type=Path, help="folder of the released training features (.npy)")
    parser.add_argument("--test-features", type=Path, default=None, help="folder of the test features (default: --features)")
    parser.add_argument("--train-list", type=Path, default=None, help="training list (default: the public one in tests/data/annotations)")
    parser.add_argument("--test-list", type=Path, default=None, help="test list (default: the public one)")
    parser.add_argument("--gt", type=Path, default=None, help="ground truth in the dataset's public format (default: the public one)")
    parser.add_argument("--work", type=Path, default=Path("reproduce"), help="output folder: cache, CSVs, runs (default: ./reproduce/<dataset>)")
    parser.add_argument("--sh-train-abnormal", type=int, default=63,
                        help="sh: the first N videos of the training list are abnormal (RTFM's loader; default: 63)")
    parser.add_argument("--variants", default="arms", help="comma list of arms, ms-top1, ms-topk (default: arms)")
    parser.add_argument("--epochs", type=int, default=None, help="override the preset's epochs per iteration")
    parser.add_argument("--iterations", type=int, default=None, help="override K (default 6)")
    parser.add_argument("--lr", type=float, default=None, help="override the preset's learning rate")
    parser.add_argument("--min-steps", type=int, default=None, help="override the floor on optimiser steps per iteration")
    parser.add_argument("--batch-videos", type=int, default=None, help="override the 30 + 30 videos per mini-batch")
    parser.add_argument("--seed", type=int, default=None, help="training seed (default 0)")
    parser.add_argument("--device", default=None, help="auto, cpu or cuda (default: auto)")
    parser.add_argument("--json", dest="json_path", type=Path, default=None, help="also write the measured rows here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    spec = DATASETS[args.dataset]
    variants = [v for v in args.variants.split(",") if v]
    for variant in variants:
        if variant not in VARIANTS:
            parser.error(f"--variants: unknown {variant!r}; choose from {', '.join(VARIANTS)}")
    paths = {key: getattr(args, key) or ANNOTATIONS / getattr(spec, key) for key in ("train_list", "test_list", "gt")}
    for key, path in [*paths.items(), ("features", args.features)]:
        if not path.exists():
            parser.error(f"--{key.replace('_', '-')} {path}: not found")
    work = args.work / args.dataset
    work.mkdir(parents=True, exist_ok=True)
    rows = reproduce(args.dataset, args.features, args.test_features or args.features, work, paths["train_list"],
                     paths["test_list"], paths["gt"], variants, {k: getattr(args, k) for k in TRAIN_FLAGS},
                     args.sh_train_abnormal)
    sys.stdout.write(table(args.dataset, rows))
    if args.json_path:
        args.json_path.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
