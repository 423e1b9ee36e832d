"""The ``simulate`` stage: simulated learners, answers and decisions into the event store.

Replaces the simulated rows of the event store, writes the ground truth (``paths.truth_dir``) and
``data/raw/simulate.json`` (counts and a content fingerprint), and returns what notebook 00 shows:
the simulation and tables that check it against its own truth (answers vs the 2PL curve, logged
actions vs the teacher's probabilities, next engagement by experiment arm vs the planted effect).

With ``data.source: store`` the stage stays in the DVC graph but simulates nothing: it removes the
simulator's own rows from the store (if a previous run left some), empties the truth folder (but
for a note), writes ``simulate.json`` as ``{"skipped": true, "reason": "data.source=store: …"}``
and returns a :class:`~learnops.stages.Skipped`, so that ``export`` reads exactly the rows the
user imported.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    import pandas as pd

    from learnops.config import Params
    from learnops.data.simulate import Simulation
    from learnops.stages import Skipped

#: Label of the decisions logged before the experiment started (no arm).
BEFORE_EXPERIMENT = "before experiment"


@dataclass
class SimulateResult:
    """What notebook 00 shows."""

    sim: Simulation
    summary: pd.DataFrame
    calibration: pd.DataFrame
    actions: pd.DataFrame
    engagement_by_arm: pd.DataFrame
    info: dict[str, Any]
    fingerprint: str

    skipped: ClassVar[bool] = False


def summary_table(sim: Simulation) -> pd.DataFrame:
    """Sizes of the simulation and the best accuracy an imitator of the teacher can reach."""
    import pandas as pd

    values = {
        "learners": len(sim.learners),
        "items": len(sim.items),
        "modules": sim.items["module"].nunique(),
        "responses": len(sim.responses),
        "decisions": len(sim.decisions),
        "Bayes-optimal imitation accuracy": round(sim.info["bayes_accuracy"] or float("nan"), 4),
    }
    return pd.DataFrame(
        {"value": pd.Series(list(values.values()), index=list(values), dtype=object)}
    )


def answer_calibration(sim: Simulation, bins: int = 10) -> pd.DataFrame:
    """Observed share correct per bin (the index) of the true 2PL P(correct) (equal-width bins on
    [0, 1]), with the binomial standard error of the true probability."""
    import numpy as np

    truth = sim.response_truth.merge(sim.responses[["response_id", "correct"]], on="response_id")
    cut = np.clip((truth["p_correct"].to_numpy() * bins).astype(int), 0, bins - 1)
    out = (
        truth.assign(bin=cut)
        .groupby("bin")
        .agg(p_true=("p_correct", "mean"), observed=("correct", "mean"), n=("correct", "size"))
        .reset_index()
    )
    out["bin"] = [f"[{b / bins:.1f}, {(b + 1) / bins:.1f})" for b in out["bin"]]
    out["se"] = np.sqrt(out["p_true"] * (1 - out["p_true"]) / out["n"])
    return out.set_index("bin")


def action_table(sim: Simulation) -> pd.DataFrame:
    """Per action (the index): logged decisions, their share, and the share the teacher's
    probabilities predict (the mean policy probability of the action)."""
    import pandas as pd

    from learnops.contracts import ACTIONS

    counts = sim.decisions["action"].value_counts().reindex(list(ACTIONS), fill_value=0)
    n = max(len(sim.decisions), 1)
    expected = [float(sim.decision_truth[f"p_true_{a}"].sum()) / n for a in ACTIONS]
    return pd.DataFrame(
        {
            "decisions": counts.to_numpy(),
            "share": counts.to_numpy() / n,
            "expected_share": expected,
        },
        index=pd.Index(list(ACTIONS), name="action"),
    )


def engagement_by_arm(sim: Simulation) -> pd.DataFrame:
    """Mean next engagement per experiment arm (the index) at the learner level (mean of learner
    means, normal 95% CI), next to the effect the simulator planted in that arm."""
    import numpy as np
    import pandas as pd

    d = sim.decisions.assign(arm=sim.decisions["ab_group"].fillna(BEFORE_EXPERIMENT))
    per_learner = d.groupby(["arm", "learner_hash"])["next_engagement"].mean().reset_index()
    g = per_learner.groupby("arm")["next_engagement"]
    out = pd.DataFrame(
        {
            "learners": g.size(),
            "decisions": d.groupby("arm").size(),
            "mean_next_engagement": g.mean(),
            "se": g.std(ddof=1) / np.sqrt(g.size()),
        }
    )
    out["ci_low"] = out["mean_next_engagement"] - 1.96 * out["se"]
    out["ci_high"] = out["mean_next_engagement"] + 1.96 * out["se"]
    effects = sim.info.get("ab_effect_next_engagement", {})
    out["planted_effect"] = [
        effects.get(a, 0.0) if a != BEFORE_EXPERIMENT else np.nan for a in out.index
    ]
    order = [a for a in sim.info.get("ab_groups", {}) if a in out.index]
    order += [a for a in out.index if a not in order]
    return out.loc[order].rename_axis("arm")


def skip(params: Params) -> Skipped:
    """The stage with ``data.source: store``: no simulation, the simulator's rows removed from the
    store; the :class:`~learnops.stages.Skipped` notebook 00 shows."""
    from learnops.data.simulate import STORE_SOURCE, skip_simulation
    from learnops.stages import Skipped

    removed = skip_simulation(params)
    n = sum(removed.values())
    kept = "the pipeline exports the event store's rows as they are"
    if n:
        kept += f" (removed {n} simulated rows a previous run had left in it)"
    return Skipped(
        stage="simulate",
        reason="data.source is store in params.yaml: nothing is simulated and there is no "
        "known truth to compare with; set data.source: simulate to simulate again",
        kept=kept,
        metrics={"removed": removed},
        headline=STORE_SOURCE,
    )


def run(params: Params) -> SimulateResult | Skipped:
    """Simulate into the event store (+ truth files and simulate.json) and tabulate the checks;
    with ``data.source: store``, skip (see the module docstring)."""
    from learnops.data.simulate import simulate_to_store
    from learnops.hashing import data_fingerprint
    from learnops.stages import write_timings

    t0 = time.perf_counter()
    if params.data.source == "store":
        return skip(params)
    sim = simulate_to_store(params)
    write_timings(params, "simulate", {"seconds": round(time.perf_counter() - t0, 3)})
    return SimulateResult(
        sim=sim,
        summary=summary_table(sim),
        calibration=answer_calibration(sim),
        actions=action_table(sim),
        engagement_by_arm=engagement_by_arm(sim),
        info=dict(sim.info),
        fingerprint=data_fingerprint(sim.responses, sim.decisions),
    )
