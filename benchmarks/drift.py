"""Drift-test benchmark: false-alarm rate on identical distributions (A/A) and power against a
0.3-SD shift, for the rule of ``learnops monitor drift`` (permutation test of KS + mean
difference, min-p; whole learners permuted; Holm over the 18 features), next to the old rule
(PSI > 0.2 on any feature) and to scipy's asymptotic KS with Holm (rows assumed independent)
on the same windows.

    python benchmarks/drift.py [--runs 40] [--power-runs 40]

The distribution is one simulated population (``simulate``, 2,000 learners, ~30k decisions).
Every run draws a reference of 2,000 decisions and a current window of n decisions, both **by
learner**: whole learners, chosen at random, until the table holds n rows (the last learner
truncated), reference and current learners disjoint. That is how real windows look (a window of
traffic holds all the decisions of the few learners active in it) and it is the hard case for a
test that assumes independent rows. Acceptance: the dataset alarm fires in ≤ 10 % of runs at
each n and ≤ 7 % pooled; a 0.3-SD shift of one feature at n = 2,000 is flagged in ≥ 90 %.

Writes benchmarks/results/drift.json.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
from _server import machine_info

from learnops.config import MonitorConfig, SimulateConfig
from learnops.contracts import FEATURES
from learnops.data.simulate import simulate
from learnops.io import write_json
from learnops.monitoring.drift import adjust_pvalues, drift_test, ks_test, psi

RESULTS = Path(__file__).resolve().parent / "results" / "drift.json"
SIZES = (100, 300, 2000)
N_REFERENCE = 2000
SHIFT_SD = 0.3
#: The shifted feature of the acceptance check, then others reported for context.
POWER_FEATURES = ("avg_response_time_s", "engagement", "ability")


class Population:
    """The simulated decisions, grouped by learner, and a by-learner sampler."""

    def __init__(self, seed: int, n_learners: int = 2000) -> None:
        self.decisions = simulate(SimulateConfig(n_learners=n_learners), seed).decisions
        self.decisions = self.decisions.reset_index(drop=True)
        idx = self.decisions.groupby("learner_hash").indices
        self.keys = np.array(sorted(idx))
        self.rows = [idx[k] for k in self.keys]

    def by_learner(
        self, rng: np.random.Generator, n: int, exclude: set[int] | None = None
    ) -> tuple[pd.DataFrame, set[int]]:
        """n decisions of whole learners drawn at random (the last one truncated)."""
        exclude = exclude or set()
        rows: list[int] = []
        used: set[int] = set()
        for i in rng.permutation(len(self.keys)):
            if int(i) in exclude:
                continue
            rows.extend(self.rows[i].tolist())
            used.add(int(i))
            if len(rows) >= n:
                break
        return self.decisions.iloc[rows[:n]].reset_index(drop=True), used


def rate(k: int, n: int) -> dict[str, float]:
    """Share k/n with its 95% Clopper–Pearson interval."""
    from scipy.stats import beta

    lo = float(beta.ppf(0.025, k, n - k + 1)) if k > 0 else 0.0
    hi = float(beta.ppf(0.975, k + 1, n - k)) if k < n else 1.0
    return {"fired": k, "runs": n, "rate": k / n, "ci_low": lo, "ci_high": hi}


def old_psi_rule(ref: pd.DataFrame, cur: pd.DataFrame) -> bool:
    """The rule this replaces: PSI > 0.2 on any feature (from 30 decisions up)."""
    return len(cur) >= 30 and any(psi(ref[f], cur[f]) > 0.2 for f in FEATURES)


def asymptotic_ks_holm(ref: pd.DataFrame, cur: pd.DataFrame, alpha: float) -> bool:
    """scipy's KS p-values (independent rows assumed), Holm over the features."""
    p = [ks_test(ref[f], cur[f])[1] for f in FEATURES]
    return bool((adjust_pvalues(p, "holm") <= alpha).any())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=40, help="A/A runs per window size")
    ap.add_argument("--power-runs", type=int, default=40, help="runs of the shifted feature")
    ap.add_argument("--context-runs", type=int, default=20, help="runs of the other shifts")
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--sizes", default=",".join(map(str, SIZES)), help="current window sizes")
    ap.add_argument("--out", type=Path, default=RESULTS, help="the results file")
    args = ap.parse_args()
    sizes = tuple(int(x) for x in args.sizes.split(","))
    cfg = MonitorConfig()
    settings = {
        "alpha": cfg.alpha,
        "min_n": cfg.min_n,
        "permutations": cfg.permutations,
        "correction": cfg.correction,
        "cluster": cfg.cluster,
    }
    t0 = time.perf_counter()
    pop = Population(args.seed)
    rng = np.random.default_rng(args.seed)
    sd = pop.decisions[list(FEATURES)].std()

    aa: dict[str, dict] = {}
    pooled = {"new": 0, "old_psi": 0, "asymptotic_ks": 0, "runs": 0}
    seconds: list[float] = []
    for n in sizes:
        fired = {"new": 0, "old_psi": 0, "asymptotic_ks": 0}
        features_fired: dict[str, int] = {}
        units = []
        for run in range(args.runs):
            ref, used = pop.by_learner(rng, N_REFERENCE)
            cur, _ = pop.by_learner(rng, n, used)
            t = time.perf_counter()
            res = drift_test(ref, cur, seed=run, **settings)
            seconds.append(time.perf_counter() - t)
            units.append(res.n_current_units)
            fired["new"] += res.dataset_drift
            for f in res.drifted_features:
                features_fired[f] = features_fired.get(f, 0) + 1
            fired["old_psi"] += old_psi_rule(ref, cur)
            fired["asymptotic_ks"] += asymptotic_ks_holm(ref, cur, cfg.alpha)
        aa[str(n)] = {
            "current_rows": n,
            "current_learners_mean": float(np.mean(units)),
            "new_rule": rate(fired["new"], args.runs),
            "old_psi_rule": rate(fired["old_psi"], args.runs),
            "asymptotic_ks_holm": rate(fired["asymptotic_ks"], args.runs),
            "new_rule_features_fired": features_fired,
        }
        for k in fired:
            pooled[k] += fired[k]
        pooled["runs"] += args.runs
        print(f"A/A n={n}: new {fired['new']}/{args.runs}, old PSI {fired['old_psi']}, "
              f"asymptotic KS {fired['asymptotic_ks']}", flush=True)  # fmt: skip

    power: dict[str, dict] = {}
    for i, feature in enumerate(POWER_FEATURES):
        runs = args.power_runs if i == 0 else args.context_runs
        if runs == 0:
            continue
        hits = 0
        feature_hits = 0
        for run in range(runs):
            ref, used = pop.by_learner(rng, N_REFERENCE)
            cur, _ = pop.by_learner(rng, N_REFERENCE, used)
            cur[feature] = cur[feature] + SHIFT_SD * sd[feature]
            res = drift_test(ref, cur, seed=run, **settings)
            hits += res.dataset_drift
            feature_hits += feature in res.drifted_features
        power[feature] = {
            "shift": f"+{SHIFT_SD} SD ({SHIFT_SD * sd[feature]:.4g} in feature units)",
            "current_rows": N_REFERENCE,
            "dataset_alarm": rate(hits, runs),
            "feature_flagged": rate(feature_hits, runs),
        }
        print(f"power {feature}: {hits}/{runs} (feature itself {feature_hits})", flush=True)

    out = {
        "population": {
            "simulate_seed": args.seed,
            "learners": len(pop.keys),
            "decisions": len(pop.decisions),
            "decisions_per_learner_mean": len(pop.decisions) / len(pop.keys),
        },
        "sampling": "by learner: whole learners at random until n rows (last truncated); "
        "reference and current learners disjoint",
        "reference_rows": N_REFERENCE,
        "rule": {"method": "permutation-ks+mean (min-p)", **settings},
        "aa": aa,
        "aa_pooled": {
            "new_rule": rate(pooled["new"], pooled["runs"]),
            "old_psi_rule": rate(pooled["old_psi"], pooled["runs"]),
            "asymptotic_ks_holm": rate(pooled["asymptotic_ks"], pooled["runs"]),
        },
        "power": power,
        "acceptance": {
            "aa_each_size_max": 0.10,
            "aa_pooled_max": 0.07,
            "power_min": 0.90,
            "aa_each_size_ok": all(v["new_rule"]["rate"] <= 0.10 for v in aa.values()),
            "aa_pooled_ok": pooled["new"] / pooled["runs"] <= 0.07,
            "power_ok": (
                power[POWER_FEATURES[0]]["dataset_alarm"]["rate"] >= 0.90
                if POWER_FEATURES[0] in power
                else None
            ),
        },
        "seconds_per_test": {
            "mean": float(np.mean(seconds)),
            "max": float(np.max(seconds)),
        },
        "seconds_total": time.perf_counter() - t0,
        "machine": machine_info(load_average_1m=os.getloadavg()[0]),
    }
    write_json(args.out, out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
