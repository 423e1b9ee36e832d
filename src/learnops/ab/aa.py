"""The A/A harness: how often would this data give a false winner?

The learners of EVENTS are re-randomized N times into the planned split (each learner drawn
independently with the planned shares, as the hash assignment does), which makes every true
difference zero, and each run is analysed like a real experiment — at every look when
``looks`` is given — with both methods (fixed-horizon and sequential) and the configured
multiplicity correction. Reported per method and metric:

- ``fpr``: the share of runs in which some comparison of that metric was significant at some
  look (the chance of a false positive when the experiment is watched at those looks);
- ``coverage_last``: the share of (run, treatment) CIs at the last look that cover 0;
- ``coverage_all_looks``: the share of (run, treatment) whose CI covered 0 at every look
  (time-uniform coverage: what a confidence sequence guarantees);

and per method ``fpr_any``: the share of runs with any significant comparison at any look.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from learnops.ab.analysis import (
    DEFAULT_METRICS,
    METHODS,
    LearnerData,
    Options,
    compare_all,
    learner_table,
    look_sizes,
    metric_specs,
)
from learnops.ab.sequential import DEFAULT_TUNING_N
from learnops.errors import LearnopsError


def aa_harness(
    events: pd.DataFrame,
    runs: int = 200,
    looks: int | None = None,
    planned_split: Mapping[str, float] | None = None,
    control: str | None = None,
    metrics: Sequence[str] = DEFAULT_METRICS,
    ratio_metrics: Mapping[str, Sequence[str]] | None = None,
    covariates: Mapping[str, str] | None = None,
    alpha: float = 0.05,
    correction: str = "holm",
    tuning_n: float = DEFAULT_TUNING_N,
    seed: int = 0,
    methods: Sequence[str] = METHODS,
) -> dict[str, Any]:
    """Re-randomize the learners of ``events`` ``runs`` times into ``planned_split`` (default:
    the observed shares of its groups) and measure false positives and CI coverage for each
    method and metric (see the module docstring). Returns a JSON-ready dict with ``summary``
    (one row per method × metric) and ``overall`` (per method)."""
    if isinstance(runs, bool) or not isinstance(runs, int) or runs < 1:
        raise LearnopsError(f"runs must be an integer >= 1, got {runs!r}")
    for m in methods:
        if m not in METHODS:
            raise LearnopsError(f"unknown method {m!r} (methods: {', '.join(METHODS)})")
    metrics = list(metrics or [])
    learners = learner_table(events, metrics, covariates, ratio_metrics)
    specs = metric_specs(metrics, ratio_metrics, covariates)
    data = LearnerData.from_table(learners)
    split = _split(planned_split, learners)
    arms = list(split)
    control = control or ("gpt4" if "gpt4" in arms else arms[0])
    if control not in arms:
        raise LearnopsError(f"control {control!r} is not in the planned split ({', '.join(arms)})")
    treatments = [a for a in arms if a != control]
    if not treatments:
        raise LearnopsError("the planned split needs at least two arms")
    shares = np.array([split[a] for a in arms], dtype=float)
    shares = shares / shares.sum()
    sizes = look_sizes(len(data), looks) if looks else [len(data)]
    rng = np.random.default_rng(seed)
    names = [s.name for s in specs]
    # [method][metric] → arrays (runs,) / (runs, treatments)
    any_sig = {m: np.zeros((runs, len(names)), dtype=bool) for m in methods}
    cover_last = {m: np.zeros((runs, len(names), len(treatments)), dtype=bool) for m in methods}
    cover_all = {m: np.ones((runs, len(names), len(treatments)), dtype=bool) for m in methods}
    first_sig = {m: np.full(runs, -1) for m in methods}
    idx = {(c, t): (i, j) for i, c in enumerate(names) for j, t in enumerate(treatments)}
    for r in range(runs):
        groups = np.asarray(arms, dtype=object)[rng.choice(len(arms), size=len(data), p=shares)]
        run_data = data.regroup(groups.astype(str))
        for method in methods:
            opts = Options(
                control=control,
                alpha=alpha,
                method=method,
                correction=correction,
                tuning_n=tuning_n,
                with_mde=False,
            )
            for k, n in enumerate(sizes):
                last = k == len(sizes) - 1
                comps = compare_all(run_data.head(n), specs, treatments, opts, strict=False)
                for c in comps:
                    i, j = idx[(c["metric"], c["treatment"])]
                    lo, hi = c["ci_low"], c["ci_high"]
                    covered = bool(np.isfinite(lo) and np.isfinite(hi) and lo <= 0 <= hi)
                    if c["significant"]:
                        any_sig[method][r, i] = True
                        if first_sig[method][r] < 0:
                            first_sig[method][r] = k + 1
                    if not covered and np.isfinite(lo) and np.isfinite(hi):
                        cover_all[method][r, i, j] = False
                    if last:
                        cover_last[method][r, i, j] = covered
    summary = []
    overall = {}
    for method in methods:
        for i, name in enumerate(names):
            summary.append(
                {
                    "method": method,
                    "metric": name,
                    "fpr": float(any_sig[method][:, i].mean()),
                    "coverage_last": float(cover_last[method][:, i, :].mean()),
                    "coverage_all_looks": float(cover_all[method][:, i, :].mean()),
                }
            )
        fpr_any = float(any_sig[method].any(axis=1).mean())
        overall[method] = {
            "fpr_any": fpr_any,
            "fpr_any_ci": list(_wilson(int(any_sig[method].any(axis=1).sum()), runs)),
            "first_significant_look": [int(x) for x in first_sig[method] if x > 0],
        }
    return {
        "runs": runs,
        "looks": len(sizes),
        "look_sizes": [int(n) for n in sizes],
        "n_learners": len(data),
        "planned_split": {a: float(s) for a, s in zip(arms, shares, strict=True)},
        "control": control,
        "treatments": treatments,
        "metrics": names,
        "alpha": alpha,
        "correction": correction,
        "sequential_tuning_n": tuning_n,
        "seed": seed,
        "summary": summary,
        "overall": overall,
    }


def _split(planned: Mapping[str, float] | None, learners: pd.DataFrame) -> dict[str, float]:
    if planned:
        bad = [g for g, w in planned.items() if not (float(w) > 0 and math.isfinite(float(w)))]
        if bad:
            raise LearnopsError(f"planned split shares must be > 0 ({', '.join(bad)})")
        return {str(g): float(w) for g, w in planned.items()}
    counts = learners["group"].value_counts().sort_index()
    return {str(g): float(n) for g, n in counts.items()}


def _wilson(k: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """Wilson 95% interval of a proportion k / n."""
    p = k / n
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return max(0.0, centre - half), min(1.0, centre + half)


def summary_table(result: Mapping[str, Any]) -> str:
    """The harness result as a fixed-width text table."""
    lines = [
        f"A/A harness: {result['runs']} re-randomizations of {result['n_learners']} learners "
        f"into {', '.join(f'{a}={s:.2g}' for a, s in result['planned_split'].items())}; "
        f"{result['looks']} look(s); alpha {result['alpha']}, {result['correction']} correction",
        f"{'method':<11} {'metric':<24} {'FPR':>7} {'cover last':>11} {'cover all looks':>16}",
    ]
    for row in result["summary"]:
        lines.append(
            f"{row['method']:<11} {row['metric']:<24} {row['fpr']:>7.3f} "
            f"{row['coverage_last']:>11.3f} {row['coverage_all_looks']:>16.3f}"
        )
    for method, o in result["overall"].items():
        lo, hi = o["fpr_any_ci"]
        lines.append(
            f"{method:<11} {'any comparison':<24} {o['fpr_any']:>7.3f} (95% CI {lo:.3f}..{hi:.3f})"
        )
    return "\n".join(lines)
