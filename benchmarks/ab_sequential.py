"""Sequential A/B analysis, measured (issue 15 acceptance).

    python benchmarks/ab_sequential.py [--aa-runs 500 --power-runs 100 --ratio-runs 1000]

Learner-clustered data like the decision logs: 1,500 learners randomized 40/40/20 into ml / gpt4 /
hybrid, arriving over 30 days, each with 1–8 rows (a learner random effect plus row noise) of
engagement, accuracy, success (0/1) and `correct` out of `attempted` answers (the ratio metric
accuracy_ratio = Σ correct / Σ attempted). Every run is analysed at 20 equally spaced cumulative
learner counts (learners in order of their first event) with `learnops.ab.analysis` — the code
behind `learnops ab analyze --looks 20 [--sequential]` — over 4 metrics × 2 treatments, Holm.

1. A/A: share of runs in which some comparison is ever significant over the 20 looks, with the
   sequential method (target ≤ 8%, nominal 5%) and with fixed-horizon tests (the peeking rate).
2. Power: a 0.05 lift on engagement for ml; share of runs where ml's engagement comparison is
   significant at the last look with the sequential method (target ≥ 4 of 5 runs).
3. Delta method: 1,000 simulated A/A experiments, coverage of the 95% delta-method CI of the
   ratio-metric difference (target 95 ± 2%), of its relative lift, and with CUPED.

Numbers go to benchmarks/results/ab_sequential.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
from _server import machine_info

from learnops.ab.analysis import (
    LearnerData,
    Options,
    compare_all,
    learner_table,
    look_results,
    metric_specs,
)
from learnops.io import write_json

RESULTS = Path(__file__).resolve().parent / "results" / "ab_sequential.json"
SPLIT = {"ml": 0.4, "gpt4": 0.4, "hybrid": 0.2}
METRICS = ["accuracy", "engagement", "success"]
RATIOS = {"accuracy_ratio": ["correct", "attempted"]}
LOOKS = 20
TUNING_N = 1000


def clustered_events(
    rng: np.random.Generator, n: int = 1500, effect: dict[str, float] | None = None
) -> pd.DataFrame:
    """Learner-clustered events: arms drawn with the SPLIT shares, 1–8 rows per learner."""
    effect = effect or {}
    arms = np.array(list(SPLIT))
    group = arms[rng.choice(len(arms), n, p=list(SPLIT.values()))]
    k = rng.integers(1, 9, n)
    lid = np.repeat(np.arange(n), k)
    m = lid.size
    u_eng = rng.normal(0.6, 0.1, n) + np.array([effect.get(g, 0.0) for g in group])
    u_acc = np.clip(rng.normal(0.7, 0.12, n), 0.05, 0.98)
    u_suc = rng.uniform(0.5, 0.9, n)
    arrive = rng.uniform(0, 30, n)
    ts = pd.Timestamp("2026-07-01", tz="UTC") + pd.to_timedelta(
        arrive[lid] + rng.uniform(0, 5, m), unit="D"
    )
    attempted = rng.integers(1, 8, m)
    return pd.DataFrame(
        {
            "learner_id": lid.astype(str),
            "group": group[lid],
            "timestamp": ts,
            "engagement": np.clip(u_eng[lid] + rng.normal(0, 0.08, m), 0, 1),
            "accuracy": np.clip(u_acc[lid] + rng.normal(0, 0.1, m), 0, 1),
            "success": (rng.uniform(size=m) < u_suc[lid]).astype(float),
            "attempted": attempted.astype(float),
            "correct": rng.binomial(attempted, u_acc[lid]).astype(float),
        }
    )


def _looks(events: pd.DataFrame, method: str) -> list[dict]:
    lt = learner_table(events, METRICS, None, RATIOS)
    specs = metric_specs(METRICS, RATIOS)
    opts = Options("gpt4", 0.05, method, "holm", TUNING_N, with_mde=False)
    return look_results(LearnerData.from_table(lt), specs, ["hybrid", "ml"], opts, LOOKS)


def _ever_significant(looks: list[dict]) -> tuple[bool, int | None]:
    for lk in looks:
        if any(c["significant"] for c in lk["comparisons"]):
            return True, lk["look"]
    return False, None


def _rate(k: int, n: int) -> dict:
    from learnops.ab.aa import _wilson

    lo, hi = _wilson(k, n)
    return {"rate": k / n, "count": k, "runs": n, "ci95": [lo, hi]}


def aa_false_positives(runs: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    hits = {"sequential": 0, "fixed": 0}
    last_only = {"sequential": 0, "fixed": 0}
    first_looks: dict[str, list[int]] = {"sequential": [], "fixed": []}
    for _ in range(runs):
        ev = clustered_events(rng)
        for method in hits:
            looks = _looks(ev, method)
            sig, first = _ever_significant(looks)
            hits[method] += sig
            last_only[method] += any(c["significant"] for c in looks[-1]["comparisons"])
            if first:
                first_looks[method].append(first)
    return {
        method: {
            "ever_significant_over_20_looks": _rate(hits[method], runs),
            "significant_at_last_look_only": _rate(last_only[method], runs),
            "first_significant_looks": first_looks[method],
        }
        for method in hits
    }


def power(runs: int, seed: int, lift: float = 0.05) -> dict:
    rng = np.random.default_rng(seed)
    found = {"sequential": 0, "fixed": 0}
    first: dict[str, list[int | None]] = {"sequential": [], "fixed": []}
    for _ in range(runs):
        ev = clustered_events(rng, effect={"ml": lift})
        for method in found:
            looks = _looks(ev, method)
            hit = [
                lk["look"]
                for lk in looks
                for c in lk["comparisons"]
                if c["metric"] == "engagement" and c["treatment"] == "ml" and c["significant"]
            ]
            found[method] += bool(hit) and hit[-1] == looks[-1]["look"]
            first[method].append(hit[0] if hit else None)
    return {
        "lift": lift,
        **{
            m: {"found_at_last_look": _rate(found[m], runs), "first_significant_look": first[m]}
            for m in found
        },
    }


def delta_coverage(runs: int, seed: int) -> dict:
    """Coverage of the 95% delta-method CI of the ratio metric (and its relative lift, and with
    CUPED on a pre-period ratio) over simulated A/A experiments."""
    rng = np.random.default_rng(seed)
    covered = {"diff": 0, "relative_lift": 0, "diff_cuped": 0, "sequential_cs": 0}
    total = 0
    widths = {"plain": [], "cuped": []}
    for _ in range(runs):
        ev = clustered_events(rng)
        # a pre-period accuracy per learner, correlated with the learner's accuracy
        lt_pre = ev.groupby("learner_id")["accuracy"].transform("mean")
        ev["pre_accuracy"] = np.clip(lt_pre + rng.normal(0, 0.05, len(ev)), 0, 1)
        specs = metric_specs([], RATIOS)
        specs_cuped = metric_specs([], RATIOS, {"accuracy_ratio": "pre_accuracy"})
        lt = learner_table(ev, [], {"accuracy_ratio": "pre_accuracy"}, RATIOS)
        data = LearnerData.from_table(lt)
        for method, sp, keys in (
            ("fixed", specs, ("diff", "relative_lift")),
            ("fixed", specs_cuped, ("diff_cuped",)),
            ("sequential", specs, ("sequential_cs",)),
        ):
            opts = Options("gpt4", 0.05, method, "holm", TUNING_N, with_mde=False)
            for c in compare_all(data, sp, ["hybrid", "ml"], opts):
                for key in keys:
                    lo, hi = (
                        (c["rel_ci_low"], c["rel_ci_high"])
                        if key == "relative_lift"
                        else (c["ci_low"], c["ci_high"])
                    )
                    covered[key] += bool(lo <= 0 <= hi)
                if keys[0] == "diff":
                    total += 1
                    widths["plain"].append(c["ci_high"] - c["ci_low"])
                elif keys[0] == "diff_cuped":
                    widths["cuped"].append(c["ci_high"] - c["ci_low"])
    return {
        "experiments": runs,
        "intervals": total,
        "coverage": {k: v / total for k, v in covered.items()},
        "mean_ci_width": {k: float(np.mean(v)) for k, v in widths.items()},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--aa-runs", type=int, default=500)
    ap.add_argument("--power-runs", type=int, default=100)
    ap.add_argument("--ratio-runs", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=20261204)
    args = ap.parse_args()
    t0 = time.perf_counter()
    aa = aa_false_positives(args.aa_runs, args.seed)
    t1 = time.perf_counter()
    pw = power(args.power_runs, args.seed + 1)
    t2 = time.perf_counter()
    dc = delta_coverage(args.ratio_runs, args.seed + 2)
    t3 = time.perf_counter()
    seq = aa["sequential"]["ever_significant_over_20_looks"]["rate"]
    fix = aa["fixed"]["ever_significant_over_20_looks"]["rate"]
    p5 = pw["sequential"]["found_at_last_look"]["rate"]
    cov = dc["coverage"]["diff"]
    out = {
        "setup": {
            "learners": 1500,
            "split": SPLIT,
            "looks": LOOKS,
            "metrics": METRICS,
            "ratio_metrics": RATIOS,
            "comparisons_per_look": (len(METRICS) + len(RATIOS)) * 2,
            "correction": "holm",
            "alpha": 0.05,
            "sequential": "asymptotic confidence sequence (Waudby-Smith et al. 2021)",
            "sequential_tuning_n": TUNING_N,
            "seed": args.seed,
        },
        "aa": aa,
        "power": pw,
        "delta_method": dc,
        "acceptance": {
            "sequential_fpr_le_0.08": bool(seq <= 0.08),
            "fixed_fpr_higher": bool(fix > seq),
            "power_ge_0.8": bool(p5 >= 0.8),
            "delta_coverage_within_95pm2": bool(abs(cov - 0.95) <= 0.02),
        },
        "seconds": {"aa": t1 - t0, "power": t2 - t1, "delta": t3 - t2},
        "machine": machine_info(),
    }
    write_json(RESULTS, out)
    print(
        json.dumps(
            {
                "aa_fpr_sequential": seq,
                "aa_fpr_fixed": fix,
                "power_sequential_last_look": p5,
                "power_fixed_last_look": pw["fixed"]["found_at_last_look"]["rate"],
                "delta_coverage": dc["coverage"],
                "acceptance": out["acceptance"],
            },
            indent=2,
        )
    )
    print(f"results: {RESULTS}")


if __name__ == "__main__":
    main()
