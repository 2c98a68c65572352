"""Table V on synthetic worlds: does ARMS find the hard anomalies that MS-MIL self-training misses?

For every world preset (bench/worlds.py) and seed, trains the ablation variants of Table V with
the trainer's Python API and evaluates every iteration on the world's test split:

    MS-MIL + traditional   AR-MIL + traditional   BST   BST+HAM   BST+AS   BST+HAM+AS

BST and BST+HAM are the first one and two iterations of the BST+HAM+AS run: the trainer seeds
iteration k from (seed, k) alone and a phase only sees the previous iteration, so a separate
run of `--phases bst,ham --iterations 2` would repeat them bit for bit (checked with
--check-prefix). Seed s writes world s and trains with seed s, so the spread covers both.

Further runs (--runs): arms-conv / ms-conv (the detector without attention), arms-cap
(lambda_max 0.5) and arms-each (one bag per crop; use --crops > 1). Pairs of runs on the same
world and seed are compared with paired differences and 95% t-intervals.

Printed (Markdown, stdout; --out also writes it to a file): the paired differences; per world,
the final iteration of each variant (mean ± std over seeds) with the keys of `vad eval --json`
(auc, ap, auc_abnormal, ap_abnormal, spread_abnormal, false_alarm_rate), the score gap, the
Fig. 7 bins of hard-part snippets, the hard-part and in-video AUC (the world knows which snippet
is which) and how many seeds ended flat; then per iteration (Table IV/VI): steps, AUC, AUC_A,
spread, pseudo-label precision, lambda, the share of active head units and the attention gate.

    python bench/ablation.py [--worlds hard,easy,long] [--seeds 0,1,2] [--runs ms,arms,arms-conv]
                             [--epochs 40] [--min-steps 0] [--iterations 4] [--hidden-dim 128]
                             [--crops 1] [--jobs 1] [--device cpu] [--out table.md] [--json raw.json]
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import worlds  # noqa: E402

log = logging.getLogger("vad")

# One training run per entry (make_config overrides, "detector" those of the detector's fields);
# the variants of Table V are read off them.
# The default detector is Fig. 5 with the gated attention branch; -conv drops the attention.
RUNS: dict[str, dict] = {
    "ms": {"schedule": "traditional", "loss": "ms-top1"},
    "ar": {"schedule": "traditional", "loss": "ar"},
    "bst-as": {"phases": ("bst", "as")},
    "arms": {"phases": ("bst", "ham", "as")},
    "arms-conv": {"phases": ("bst", "ham", "as"), "detector": {"attention": False}},
    "ms-conv": {"schedule": "traditional", "loss": "ms-top1", "detector": {"attention": False}},
    "arms-cap": {"phases": ("bst", "ham", "as"), "lambda_max": 0.5},
    "arms-each": {"phases": ("bst", "ham", "as"), "crop_bags": "each"},
    # bf16 autocast twins of the default runs (BenchConfig.precision is every other run's)
    "arms-bf16": {"phases": ("bst", "ham", "as"), "precision": "bf16"},
    "ms-bf16": {"schedule": "traditional", "loss": "ms-top1", "precision": "bf16"},
}
DEFAULT_RUNS = ("ms", "ar", "bst-as", "arms")
# Paired comparisons (same world, same seed): (better-hoped run, reference run, what it tests).
PAIRS = (
    ("arms", "ms", "ARMS vs MS-MIL + traditional (gated detector)"),
    ("arms", "arms-conv", "gated paper detector vs no attention (ARMS)"),
    ("ms", "ms-conv", "gated paper detector vs no attention (MS-MIL)"),
    ("arms-cap", "arms", "lambda_max 0.5 vs none (ARMS, gated)"),
    ("arms", "arms-each", "crops averaged before the loss vs one bag per crop (ARMS)"),
    ("arms-bf16", "arms", "bf16 vs fp32 training (ARMS)"),
    ("ms-bf16", "ms", "bf16 vs fp32 training (MS-MIL)"),
)
PREFIX_RUN = {"phases": ("bst", "ham")}  # BST+HAM on its own, only for --check-prefix


@dataclasses.dataclass(frozen=True)
class Variant:
    run: str  # key of RUNS
    take: int | None  # iterations of that run that make the variant; None: all


VARIANTS: dict[str, Variant] = {
    "MS-MIL + traditional": Variant("ms", None),
    "AR-MIL + traditional": Variant("ar", None),
    "BST": Variant("arms", 1),
    "BST+HAM": Variant("arms", 2),
    "BST+AS": Variant("bst-as", None),
    "BST+HAM+AS": Variant("arms", None),
    "MS-MIL + traditional, no attention": Variant("ms-conv", None),
    "BST+HAM+AS, no attention": Variant("arms-conv", None),
    "BST+HAM+AS, lambda_max 0.5": Variant("arms-cap", None),
    "BST+HAM+AS, one bag per crop": Variant("arms-each", None),
}

CONSTANT_STD = 0.01  # all test scores within this std: the model outputs one number
FLAT_SPREAD = 0.01  # spread_abnormal below this: the curves of abnormal videos are flat
FLAT_STD = 0.05  # abnormal test videos this flat inside ...
FLAT_LIFT = 0.2  # ... while raised this much above normal videos: the flat-curve trap (docs/method.md, The detector)


@dataclasses.dataclass(frozen=True)
class BenchConfig:
    epochs: int = 40
    iterations: int = 4
    lr: float = 1e-3
    lambda_small: float = 0.1
    lambda_large: float = 0.4
    lambda_max: float = 1.0  # cap on adaptive ratios (1.0: none, as the paper); a run may override it
    min_steps: int = 0  # floor on optimiser steps per iteration (0: epochs decide)
    hidden_dim: int = 128  # the paper's 1024 costs ~15x more CPU time per step
    dropout: float | None = None  # None: the trainer's default
    crops: int = 1  # crops per snippet of the generated worlds
    init: str = "xavier"  # detector initialisation of every run (xavier or torch)
    batch_videos: int = 30
    precision: str = "fp32"  # training arithmetic of every run that does not set its own (fp32, bf16 or auto)
    device: str = "cpu"
    threads: int = 1


def snippet_auc(scores: np.ndarray, kinds: np.ndarray, kind: int) -> float | None:
    """ROC-AUC of snippets of one kind against every normal (incl. unusual) snippet."""
    from sklearn.metrics import roc_auc_score

    negative = np.isin(kinds, (worlds.KIND_NORMAL, worlds.KIND_UNUSUAL))
    positive = kinds == kind
    if not positive.any() or not negative.any():
        return None
    y = np.r_[np.zeros(negative.sum()), np.ones(positive.sum())]
    return float(roc_auc_score(y, np.r_[scores[negative], scores[positive]]))


def localisation_auc(raw: dict[str, np.ndarray], kinds: dict[str, np.ndarray], abnormal: list[str]) -> float | None:
    """Mean over abnormal videos of the snippet AUC inside the video (event vs the rest): 0.5 for a
    detector that only tells abnormal videos from normal ones, however high its frame AUC."""
    from sklearn.metrics import roc_auc_score

    values = []
    for video in abnormal:
        truth = np.isin(kinds[video], (worlds.KIND_EASY, worlds.KIND_HARD))
        if 0 < truth.sum() < truth.size:
            values.append(roc_auc_score(truth, raw[video]))
    return float(np.mean(values)) if values else None


def test_metrics(raw: dict[str, np.ndarray], test: dict) -> dict:
    """Frame metrics with and without correction, plus world-truth metrics on raw snippet scores."""
    from vad.models.evaluate import evaluate_scores

    order, counts, gt, kinds, labels = test["order"], test["counts"], test["gt"], test["kinds"], test["labels"]
    plain = evaluate_scores(raw, counts, gt, order, correction=False)
    corrected = evaluate_scores(raw, counts, gt, order, correction=True)
    evaluated = {key: corrected[key] for key in EVAL_KEYS}  # the keys of `vad eval --json`, corrected as its default
    all_scores = np.concatenate([raw[v] for v in order])
    all_kinds = np.concatenate([kinds[v] for v in order])
    hard = all_scores[all_kinds == worlds.KIND_HARD]
    abnormal_means = [raw[v].mean() for v in order if labels[v]]
    normal_means = [raw[v].mean() for v in order if not labels[v]]
    within = float(np.mean([raw[v].std() for v in order if labels[v]]))
    lift = float(np.mean(abnormal_means) - np.mean(normal_means))
    return {
        **evaluated, "auc_raw": plain["auc"], "auc_abnormal_raw": plain["auc_abnormal"], "gap": plain["score_gap"],
        "gap_corrected": corrected["score_gap"], "bins": plain["hard_anomaly_bins"],
        "hard_auc": snippet_auc(all_scores, all_kinds, worlds.KIND_HARD),
        "easy_auc": snippet_auc(all_scores, all_kinds, worlds.KIND_EASY),
        "local_auc": localisation_auc(raw, kinds, [v for v in order if labels[v]]),
        "hard_bins": _bins(hard),
        "within_std": within, "share_above_half": plain["monitors"]["abnormal_video_share_above_0.5"],
        "lift": lift, "constant": bool(all_scores.std() < CONSTANT_STD),
        "flat": bool(all_scores.std() >= CONSTANT_STD and within < FLAT_STD and lift > FLAT_LIFT),
        "spread_flat": bool(corrected["spread_abnormal"] is not None and corrected["spread_abnormal"] < FLAT_SPREAD),
    }


EVAL_KEYS = ("auc", "ap", "auc_abnormal", "ap_abnormal", "spread_abnormal", "false_alarm_rate")


def _bins(scores: np.ndarray) -> dict:
    from vad.models.evaluate import hard_anomaly_bins

    return hard_anomaly_bins(scores, np.ones(scores.size, dtype=np.uint8))


def load_world(paths: worlds.WorldPaths) -> tuple:
    from vad.extract.cache import FeatureCache
    from vad.models.evaluate import cache_frame_counts
    from vad.tables import read_gt, read_labels

    cache = FeatureCache(paths.cache)
    train_labels = read_labels(paths.labels("train"))
    test_labels = read_labels(paths.labels("test"))
    order = list(test_labels)
    test = {
        "order": order, "labels": test_labels, "counts": cache_frame_counts(cache, order),
        "gt": read_gt(paths.gt("test")), "kinds": {v: worlds.snippet_kinds(cache, v) for v in order},
        "features": {v: cache.load(v) for v in order},
    }
    return cache, train_labels, read_gt(paths.gt("train")), test


def run_one(world: str, seed: int, bench: BenchConfig, work: str, runs: tuple[str, ...]) -> dict:
    """Write world `world` with seed `seed`, train every run, evaluate every iteration."""
    import torch

    from vad.models.config import make_config
    from vad.models.data import load_training_set
    from vad.models.inference import score_video
    from vad.models.trainer import train

    torch.set_num_threads(bench.threads)
    paths = worlds.write_world(Path(work) / f"{world}-{seed}-c{bench.crops}", worlds.make_world_config(world, crops=bench.crops), seed, world)
    cache, train_labels, train_gt, test = load_world(paths)
    data = load_training_set(cache, train_labels, progress=False)
    out = {"world": world, "seed": seed, "runs": {}}
    for name in runs:
        iterations = []
        started = time.process_time()

        def on_iteration(result, iterations=iterations):
            raw = {v: score_video(result.model, test["features"][v]) for v in test["order"]}
            precision = result.metrics.get("pseudo_label_precision", {})
            iterations.append({
                "iteration": result.iteration, "phase": result.phase, "loss": result.metrics["loss"],
                "lambda_mean": result.metrics["lambda"]["mean"], "guard_fired": result.metrics["lambda"]["guard_fired"],
                "steps": result.metrics["steps"], "detector": result.metrics["detector"],
                "pseudo_precision": precision.get("precision"), "pseudo_precision_abnormal": precision.get("abnormal_precision"),
                "train_monitors": result.metrics["train_monitors"], **test_metrics(raw, test),
                "first_scores": raw[test["order"][-1]][:8].tolist(),
            })

        run = RUNS.get(name, PREFIX_RUN)
        settings = dict(epochs=bench.epochs, min_steps=bench.min_steps, iterations=bench.iterations, lr=bench.lr,
                        lambda_small=bench.lambda_small, lambda_large=bench.lambda_large, lambda_max=bench.lambda_max,
                        batch_videos=bench.batch_videos, seed=seed, device=bench.device, precision=bench.precision)
        detector = {"dropout": bench.dropout, "hidden_dim": bench.hidden_dim, "init": bench.init, **run.get("detector", {})}
        config = make_config(None, **{**settings, **run, "detector": detector})
        train(config, data, on_iteration=on_iteration, progress=False, train_gt=train_gt)
        out["runs"][name] = {"iterations": iterations, "cpu_s": time.process_time() - started}
        log.info("%s seed %d %s: AUC %s (%.0f s CPU)", world, seed, name,
                 " ".join(f"{it['auc']:.3f}" for it in iterations), out["runs"][name]["cpu_s"])
    return out


# -- tables -----------------------------------------------------------------------------------
def _ms(values: list) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    return f"{np.mean(values):.3f} ± {np.std(values):.3f}" if len(values) > 1 else f"{values[0]:.3f}"


def variant_rows(results: list[dict], world: str) -> list[dict]:
    rows = []
    for label, variant in VARIANTS.items():
        finals = []
        for result in results:
            if result["world"] != world or variant.run not in result["runs"]:
                continue
            iterations = result["runs"][variant.run]["iterations"]
            finals.append(iterations[(variant.take or len(iterations)) - 1])
        if finals:
            rows.append({"variant": label, "finals": finals})
    return rows


def world_table(results: list[dict], world: str) -> str:
    head = ("| variant | AUC | AUC raw | AUC_A | AP_A | spread | false alarms | score gap | hard-part AUC | in-video AUC | "
            "hard snippets S / M / L | share > 0.5 | final lambda | flat / trap |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for row in variant_rows(results, world):
        f = row["finals"]
        hard_bins = " / ".join(f"{np.mean([x['hard_bins'][k] for x in f]):.2f}" for k in f[0]["hard_bins"])
        cells = [_ms([x[key] for x in f]) for key in ("auc", "auc_raw", "auc_abnormal", "ap_abnormal", "spread_abnormal", "false_alarm_rate",
                                                     "gap", "hard_auc", "local_auc")]
        lines.append(f"| {row['variant']} | {' | '.join(cells)} | {hard_bins} | {_ms([x['share_above_half'] for x in f])} | "
                     f"{_ms([x['lambda_mean'] for x in f])} | {sum(x['spread_flat'] for x in f)} / {sum(x['flat'] for x in f)} of {len(f)} |")
    return "\n".join(lines)


def iteration_table(results: list[dict], world: str) -> str:
    head = ("| run | iteration | phase | steps | AUC | AUC_A | spread | gap | hard-part AUC | in-video AUC | hard in L | "
            "pseudo-label prec. (top quartile) | lambda mean | active units | gate weight | branch / path | flat / trap |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for name in RUNS:
        per_seed = [r["runs"][name]["iterations"] for r in results if r["world"] == world and name in r["runs"]]
        if not per_seed:
            continue
        for k in range(len(per_seed[0])):
            its = [s[k] for s in per_seed]
            gates = [i["detector"].get("gate") for i in its]
            gate_w = _ms([g["weight_abs_mean"] for g in gates if g]) if any(gates) else "-"
            ratio = _ms([g["branch_to_path_norm"] for g in gates if g]) if any(gates) else "-"
            cells = [_ms([i[key] for i in its]) for key in ("auc", "auc_abnormal", "spread_abnormal", "gap", "hard_auc", "local_auc")]
            lines.append(
                f"| {name} | {k + 1} | {its[0]['phase']} | {its[0]['steps']} | {' | '.join(cells)} | {_ms([i['hard_bins']['(0.8,1]'] for i in its])} | "
                f"{_ms([i['pseudo_precision_abnormal'] for i in its])} | {_ms([i['lambda_mean'] for i in its])} | "
                f"{_ms([i['detector']['active_units'] for i in its])} | {gate_w} | {ratio} | "
                f"{sum(i['spread_flat'] for i in its)} / {sum(i['flat'] for i in its)} |")
    return "\n".join(lines)


def paired_differences(a: list[float], b: list[float]) -> dict:
    """Mean of a - b over seeds with its 95% t-interval (paired: same world and seed)."""
    from scipy import stats

    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    n = d.size
    half = float(stats.t.ppf(0.975, n - 1) * d.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan")
    return {"n": n, "mean": float(d.mean()), "low": float(d.mean() - half), "high": float(d.mean() + half), "wins": int((d > 0).sum())}


def paired_table(results: list[dict], world_names: list[str]) -> str:
    head = "| world | comparison | seeds | Δ AUC (95% CI) | wins | Δ AUC_A (95% CI) | wins | Δ spread |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for world in world_names:
        for better, reference, title in PAIRS:
            pairs = [(r["runs"][better]["iterations"][-1], r["runs"][reference]["iterations"][-1])
                     for r in results if r["world"] == world and better in r["runs"] and reference in r["runs"]]
            if len(pairs) < 2:
                continue
            cells = []
            for key in ("auc", "auc_abnormal"):
                d = paired_differences([x[key] for x, _ in pairs], [y[key] for _, y in pairs])
                cells += [f"{d['mean']:+.3f} ({d['low']:+.3f}, {d['high']:+.3f})", f"{d['wins']} of {d['n']}"]
            spread = np.mean([x["spread_abnormal"] - y["spread_abnormal"] for x, y in pairs])
            lines.append(f"| {world} | {title} | {len(pairs)} | {' | '.join(cells)} | {spread:+.3f} |")
    return "\n".join(lines)


def cpu_line() -> str:
    from vad.hardware import cpu_description

    cpu = cpu_description()
    return f"{cpu['cpu']} ({' '.join(cpu['cpu_flags'])})"


def report(results: list[dict], bench: BenchConfig, world_names: list[str], seeds: list[int], wall_s: float) -> str:
    cpu = sum(run["cpu_s"] for r in results for run in r["runs"].values())
    parts = [
        f"Settings: {json.dumps(dataclasses.asdict(bench))}; worlds {','.join(world_names)}; seeds {','.join(map(str, seeds))}; "
        f"training CPU time {cpu:.0f} s (process time summed over runs), wall {wall_s:.0f} s. CPU: {cpu_line()}.",
        "Final iteration of each variant, mean ± std over seeds. AUC, AUC_A, AP_A, spread and false alarms are the keys of "
        "`vad eval --json` (score correction on, its default); AUC raw without it. AUC_A / AP_A: frames of abnormal test videos only. "
        "spread: mean within-video std of abnormal videos' frame scores. false alarms: share of normal videos' frames above 0.5. "
        "Hard-part AUC: hard-part snippets against all normal snippets (raw scores). In-video AUC: event vs other snippets inside each "
        "abnormal test video, averaged (0.5 = a video classifier that does not localise). S / M / L: share of hard-part snippets "
        "scoring in [0,0.4], (0.4,0.8], (0.8,1] (Fig. 7). active units: share of the 32-wide layer firing on a training segment. "
        f"flat: spread < {FLAT_SPREAD}; trap: within-video std < {FLAT_STD} while abnormal videos are raised > {FLAT_LIFT} above normal ones.",
    ]
    paired = paired_table(results, world_names)
    if paired.count("\n") > 1:
        parts += ["\n### Paired differences (final iteration, same world and seed)\n", paired]
    for world in world_names:
        parts += [f"\n### World `{world}`\n", world_table(results, world), "", "Per iteration (Table IV / VI style):", "",
                  iteration_table(results, world)]
    return "\n".join(parts) + "\n"


def check_prefix(bench: BenchConfig, work: str) -> str:
    """Train `--phases bst,ham --iterations 2` separately and compare with the full run's first two iterations."""
    a = run_one("hard", 0, dataclasses.replace(bench, iterations=2), work, ("bst-ham",))
    b = run_one("hard", 0, dataclasses.replace(bench, iterations=max(3, bench.iterations)), work, ("arms",))
    pairs = zip(a["runs"]["bst-ham"]["iterations"], b["runs"]["arms"]["iterations"][:2])
    same = all(x["first_scores"] == y["first_scores"] and x["auc"] == y["auc"] for x, y in pairs)
    return f"prefix check (BST+HAM run == first two iterations of BST+HAM+AS): {'identical' if same else 'DIFFERENT'}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worlds", default="hard,easy,long", help="world presets of bench/worlds.py (default: hard,easy,long)")
    parser.add_argument("--seeds", default="0,1,2", help="seeds; each writes its own world and trains with it (default: 0,1,2)")
    parser.add_argument("--runs", default=",".join(DEFAULT_RUNS), help=f"training runs to make, of {','.join(RUNS)} (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=BenchConfig.epochs, help="epochs per iteration (default: %(default)s)")
    parser.add_argument("--iterations", type=int, default=BenchConfig.iterations, help="self-training iterations K (default: %(default)s)")
    parser.add_argument("--lr", type=float, default=BenchConfig.lr, help="Adam learning rate (default: %(default)s)")
    parser.add_argument("--lambda-small", type=float, default=BenchConfig.lambda_small, help="default: %(default)s")
    parser.add_argument("--lambda-large", type=float, default=BenchConfig.lambda_large, help="default: %(default)s")
    parser.add_argument("--lambda-max", type=float, default=BenchConfig.lambda_max, help="cap on adaptive ratios (default: %(default)s = none)")
    parser.add_argument("--hidden-dim", type=int, default=BenchConfig.hidden_dim, help="detector width (paper: 1024; default: %(default)s)")
    parser.add_argument("--min-steps", type=int, default=BenchConfig.min_steps, help="floor on optimiser steps per iteration (default: %(default)s)")
    parser.add_argument("--crops", type=int, default=BenchConfig.crops, help="crops per snippet of the worlds (default: %(default)s)")
    parser.add_argument("--init", choices=("xavier", "torch"), default=BenchConfig.init, help="detector initialisation (default: %(default)s)")
    parser.add_argument("--dropout", type=float, default=None, help="detector dropout (default: the trainer's)")
    parser.add_argument("--precision", choices=("fp32", "bf16", "auto"), default=BenchConfig.precision,
                        help="training arithmetic of the runs that do not set their own (default: %(default)s)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per job (default: 1)")
    parser.add_argument("--jobs", type=int, default=1, help="(world, seed) pairs trained in parallel processes (default: 1)")
    parser.add_argument("--work", default=None, help="folder for the generated worlds (default: a temporary folder)")
    parser.add_argument("--out", default=None, help="also write the Markdown report here")
    parser.add_argument("--json", dest="json_path", default=None, help="write every measured number here")
    parser.add_argument("--check-prefix", action="store_true", help="only verify that BST/BST+HAM equal the prefix of BST+HAM+AS")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    bench = BenchConfig(epochs=args.epochs, iterations=args.iterations, lr=args.lr, lambda_small=args.lambda_small,
                        lambda_large=args.lambda_large, lambda_max=args.lambda_max, hidden_dim=args.hidden_dim, min_steps=args.min_steps,
                        crops=args.crops, init=args.init, dropout=args.dropout, precision=args.precision, device=args.device,
                        threads=args.threads)
    world_names = [w for w in args.worlds.split(",") if w]
    seeds = [int(s) for s in args.seeds.split(",") if s]
    runs = tuple(r for r in args.runs.split(",") if r)
    for name in world_names:
        if name not in worlds.PRESETS:
            parser.error(f"unknown world {name!r}; choose from {', '.join(worlds.PRESETS)}")
    for name in runs:
        if name not in RUNS:
            parser.error(f"unknown run {name!r}; choose from {', '.join(RUNS)}")
    with contextlib.ExitStack() as stack:
        work = args.work or stack.enter_context(tempfile.TemporaryDirectory(prefix="vad-ablation-"))
        if args.check_prefix:
            print(check_prefix(bench, work))
            return
        started = time.time()
        tasks = [(w, s) for w in world_names for s in seeds]
        if args.jobs > 1:
            with ProcessPoolExecutor(args.jobs) as pool:
                results = list(pool.map(run_one, *zip(*tasks), *([x] * len(tasks) for x in (bench, work, runs))))
        else:
            results = [run_one(w, s, bench, work, runs) for w, s in tasks]
        text = report(results, bench, world_names, seeds, time.time() - started)
    sys.stdout.write(text)
    if args.out:
        Path(args.out).write_text(text)
    if args.json_path:
        Path(args.json_path).write_text(json.dumps({"bench": dataclasses.asdict(bench), "results": results}, indent=1))


if __name__ == "__main__":
    main()
