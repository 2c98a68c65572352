"""A training run's health: what the per-iteration monitors say went wrong, read once at the end.

Self-training can fail silently: a bootstrap (BST) that ends flat gives the next phase pseudo
labels close to noise, and the run can end anti-localised (the normal parts of abnormal videos
scoring above the events) with a good-looking loss. `health` reads the metrics of every
iteration (models/trainer.py) and returns the summary `vad train` prints and records, with one
warning per problem, naming the iteration and what to try.
"""
from __future__ import annotations

import numpy as np

FLAT_STD = 0.05  # abnormal training videos whose eval-mode scores vary less than this inside are flat
LOW_ACTIVE_UNITS = 0.25  # under this share of live units in the 32-wide layer, most of the head is dead
LOW_AGREEMENT = 0.5  # pseudo labels that agree less than this with the previous iteration's have turned around


def label_agreement(previous: np.ndarray | None, current: np.ndarray, unlabelled: int) -> float | None:
    """Share of the segments labelled in both iterations whose pseudo label is the same; None when
    there is no previous iteration or no segment is labelled in both."""
    if previous is None:
        return None
    both = (previous != unlabelled) & (current != unlabelled)
    return float((previous[both] == current[both]).mean()) if both.any() else None


def health(iterations: list[dict]) -> dict:
    """The run's health from metrics.json's iterations: the iterations that ended flat, whose
    adaptive ratios ran away, whose pseudo labels turned around, and (with an evaluation) that
    ranked the normal frames of abnormal videos above the events; the final share of live units;
    and `warnings`, one line per problem: a flat or anti-localised final detector, a flat iteration
    whose pseudo labels trained the next, labels that turned around, runaway ratios or a mostly
    dead head at the end. `ok` is False when there is any warning."""
    def name(it: dict) -> str:
        return f"iteration {it['iteration']} ({it['phase']})"

    flat = [it for it in iterations if it["train_monitors"]["abnormal_within_video_std"] < FLAT_STD]
    runaway = [it for it in iterations if it["lambda"].get("runaway")]
    turned = [it for it in iterations if it.get("pseudo_label_agreement") is not None and it["pseudo_label_agreement"] < LOW_AGREEMENT]
    anti = [it for it in iterations if (it.get("eval") or {}).get("auc_abnormal") is not None and it["eval"]["auc_abnormal"] < 0.5]
    final = iterations[-1]
    active = final["detector"]["active_units"]
    warnings = []
    by_number = {it["iteration"]: it for it in iterations}
    for it in flat:
        std = it["train_monitors"]["abnormal_within_video_std"]
        after = by_number.get(it["iteration"] + 1)
        if it is final:
            warnings.append(f"{name(it)} ended flat: abnormal videos score within {std:.3f} (std) of their own mean, so the detector "
                            f"tells abnormal videos apart but not where the event is; try more optimiser steps (--min-steps), "
                            f"--init torch, or MS-MIL (--schedule traditional --loss ms-top1) to compare")
        elif after is not None and after.get("pseudo_labels_used"):
            warnings.append(f"{name(it)} ended flat (abnormal within-video std {std:.3f} < {FLAT_STD}), and {name(after)} trained on its "
                            f"pseudo labels, which are then close to noise; try more optimiser steps (--min-steps) or --init torch")
    for it in turned:
        warnings.append(f"{name(it)}: its pseudo labels agree with the previous iteration's on only {it['pseudo_label_agreement']:.0%} "
                        f"of segments, so self-training moved away from its bootstrap; compare the iterations' curves (iter_<k>.pt)")
    if final in anti:  # an earlier anti-localised iteration that self-training repaired is listed, not warned about
        warnings.append(f"{name(final)}: AUC_A {final['eval']['auc_abnormal']:.3f} < 0.5 on the evaluation videos: inside abnormal videos "
                        f"the normal frames score above the events (anti-localised); compare the iterations' AUC_A in metrics.json, "
                        f"an earlier iter_<k>.pt may be better")
    if final in runaway:
        warnings.append(f"{name(final)}: adaptive ratios ran away (mean lambda {final['lambda']['mean']:.2f}): abnormal videos score "
                        f"high as a whole; try --lambda-max 0.5")
    if active < LOW_ACTIVE_UNITS:
        warnings.append(f"{name(final)}: only {active:.0%} of the 32-wide layer's units fire on any training segment; "
                        f"try more optimiser steps (--min-steps) or --init torch")
    return {
        "ok": not warnings,
        "flat_iterations": [it["iteration"] for it in flat],
        "lambda_runaway_iterations": [it["iteration"] for it in runaway],
        "turned_iterations": [it["iteration"] for it in turned],
        "anti_localised_iterations": [it["iteration"] for it in anti],
        "pseudo_label_agreement": [it.get("pseudo_label_agreement") for it in iterations],
        "final_active_units": active,
        "warnings": warnings,
    }


def describe(summary: dict) -> str:
    """The one-line summary `vad train` prints at the end."""
    agreement = ", ".join("-" if a is None else f"{a:.2f}" for a in summary["pseudo_label_agreement"])
    return (f"health: flat iterations {summary['flat_iterations'] or 'none'}; lambda runaway {summary['lambda_runaway_iterations'] or 'none'}; "
            f"live units at the end {summary['final_active_units']:.0%}; pseudo-label agreement with the previous iteration [{agreement}]")
