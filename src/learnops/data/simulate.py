"""Synthetic learners, items and agent decisions with known ground truth.

Learners have a latent ability that grows with practice towards a personal ceiling; within a
session they tire (minutes since the last break) and their engagement drifts. Items follow a 2PL
model and are grouped in modules. Every few answers the agent decides one of five actions: the
logging policy is a noisy "teacher" (the LLM stand-in) whose action probabilities are a known
function of the 18 features (:func:`teacher_probabilities`), recorded as ``propensity``. Outcomes
depend on whether the action suited the situation (the teacher's noiseless best action). An A/B
experiment on the decision policy runs over the second half of the window with a known effect per
arm on next engagement.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from learnops.ab.assign import assign_group
from learnops.config import SimulateConfig
from learnops.contracts import ACTIONS, DECISION_COLUMNS, FEATURES, RESPONSE_COLUMNS
from learnops.data.hashing import learner_hash

#: Inverse temperature of the teacher: larger means a more decisive (less noisy) logging policy.
TEACHER_BETA = 2.0
#: Prefix of every simulated decision and response id (how the simulator recognises its rows).
SIM_PREFIX = "sim-"
#: Index of each feature in the 18-vector.
_F = {name: i for i, name in enumerate(FEATURES)}


def teacher_logits(X: np.ndarray) -> np.ndarray:
    """The teacher's action scores (n×5, ACTIONS order) for raw features X (n×18 FEATURES)."""
    X = np.asarray(X, dtype=float)
    if X.ndim != 2 or X.shape[1] != len(FEATURES):
        raise ValueError(f"X must be n×{len(FEATURES)} in FEATURES order, got {X.shape}")
    acc = X[:, _F["recent_accuracy"]]
    errs = X[:, _F["consecutive_errors"]]
    corr = X[:, _F["consecutive_correct"]]
    hints = X[:, _F["hint_rate"]]
    gap = X[:, _F["current_difficulty"]] - X[:, _F["ability"]]
    since_break = X[:, _F["minutes_since_break"]]
    items = X[:, _F["items_in_session"]]
    eng = X[:, _F["engagement"]]
    rt = X[:, _F["avg_response_time_s"]]
    days_away = X[:, _F["days_since_last_session"]]
    s = np.empty((X.shape[0], len(ACTIONS)))
    s[:, 0] = 1.0 + 2.0 * ((acc >= 0.5) & (acc <= 0.9)) + 0.15 * np.minimum(corr, 6)
    s[:, 1] = -0.5 + 3.0 * np.clip(np.abs(gap) - 0.7, 0.0, None) + 3.0 * (acc > 0.9)
    s[:, 2] = -3.0 + since_break / 5.0 + 6.0 * np.clip(0.4 - eng, 0.0, None) + 0.02 * (rt - 60.0)
    s[:, 3] = -0.5 + 1.1 * errs + 2.0 * hints - 1.0 * acc
    s[:, 4] = -4.0 + items / 4.0 + 6.0 * np.clip(0.45 - eng, 0.0, None) + 0.5 * (days_away > 14)
    return s


def teacher_probabilities(X: np.ndarray, beta: float = TEACHER_BETA) -> np.ndarray:
    """The teacher's action probabilities (n×5, ACTIONS order) for raw features X (n×18)."""
    z = beta * teacher_logits(X)
    z -= z.max(axis=1, keepdims=True)
    p = np.exp(z)
    return p / p.sum(axis=1, keepdims=True)


def bayes_accuracy(X: np.ndarray) -> float:
    """Best accuracy any classifier of the features can reach when imitating the teacher."""
    return float(teacher_probabilities(X).max(axis=1).mean())


@dataclass
class Simulation:
    """Simulated tables in the export format, and the ground truth behind them."""

    responses: pd.DataFrame
    decisions: pd.DataFrame
    items: pd.DataFrame
    learners: pd.DataFrame
    response_truth: pd.DataFrame
    decision_truth: pd.DataFrame
    info: dict = field(default_factory=dict)

    def save_truth(self, directory: str | Path) -> None:
        """Write the ground truth (items, learners, per-row truth, policy) atomically."""
        from learnops.io import write_json, write_table

        d = Path(directory)
        write_table(d / "items.csv", self.items)
        write_table(d / "learners.csv", self.learners)
        write_table(d / "responses_truth.parquet", self.response_truth)
        write_table(d / "decisions_truth.parquet", self.decision_truth)
        write_json(d / "policy.json", self.info)


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def _make_items(cfg: SimulateConfig, rng: np.random.Generator) -> pd.DataFrame:
    modules = [f"m{m + 1:02d}" for m in range(cfg.n_modules)]
    module_shift = rng.normal(0.0, 0.5, cfg.n_modules)
    mod_idx = np.arange(cfg.n_items) % cfg.n_modules
    a = np.clip(rng.lognormal(0.25, 0.3, cfg.n_items), 0.35, 3.5)
    b = np.clip(rng.normal(module_shift[mod_idx], 1.0), -3.5, 3.5)
    counter = np.zeros(cfg.n_modules, dtype=int)
    ids = []
    for m in mod_idx:
        counter[m] += 1
        ids.append(f"{modules[m]}-q{counter[m]:03d}")
    return pd.DataFrame(
        {
            "item_id": ids,
            "module": [modules[m] for m in mod_idx],
            "discrimination": a,
            "difficulty": b,
        }
    )


def simulate(cfg: SimulateConfig, seed: int, progress: bool = False) -> Simulation:
    """Simulate a population of learners, their answers and the agent's decisions."""
    ss = np.random.SeedSequence(seed)
    item_seq, learner_seq = ss.spawn(2)
    rng = np.random.default_rng(item_seq)
    items = _make_items(cfg, rng)
    modules = sorted(items["module"].unique())
    by_module: dict[str, tuple[np.ndarray, list[int]]] = {}
    for m in modules:
        idx = items.index[items["module"] == m].to_numpy()
        order = np.argsort(items.loc[idx, "difficulty"].to_numpy(), kind="stable")
        by_module[m] = (items.loc[idx[order], "difficulty"].to_numpy(), idx[order].tolist())
    item_a = items["discrimination"].to_numpy().tolist()
    item_b = items["difficulty"].to_numpy().tolist()
    item_ids = items["item_id"].tolist()
    item_mod = items["module"].tolist()

    end = datetime.combine(cfg.end_date, datetime.min.time(), tzinfo=UTC)
    start = end - timedelta(days=cfg.days)
    exp_start = start + timedelta(days=cfg.days / 2)
    effects = {g: cfg.ab_effect.get(g, 0.0) for g in cfg.ab_groups}

    resp_rows: list[tuple] = []
    resp_truth: list[tuple] = []
    dec_rows: list[dict] = []
    learner_rows: list[tuple] = []
    child_seeds = learner_seq.generate_state(cfg.n_learners)

    learner_iter = range(cfg.n_learners)
    if progress:
        from tqdm.auto import tqdm

        learner_iter = tqdm(learner_iter, desc="simulate learners", unit="learner")
    for j in learner_iter:
        r = random.Random(int(child_seeds[j]))
        lhash = learner_hash(f"sim-learner-{j:06d}")
        group = assign_group(cfg.ab_test, lhash, cfg.ab_groups)
        theta = r.gauss(0.0, 1.0)
        theta_start = theta
        lr = cfg.learning_rate * math.exp(r.gauss(0.0, 0.4))
        # practice closes the gap to a learner-specific ceiling (diminishing returns)
        ceiling = theta + max(0.3, r.gauss(1.5, 0.5))
        pref_hour = min(22.0, max(7.0, r.gauss(17.0, 3.0)))
        n_sessions = 1 + _poisson(r, cfg.sessions_per_learner - 1)
        days = sorted(r.uniform(0.0, cfg.days - 0.05) for _ in range(n_sessions))
        answered_total = 0
        last_session_end: datetime | None = None
        for k, day in enumerate(days):
            hour = min(23.5, max(0.0, r.gauss(pref_hour, 1.5)))
            t = start + timedelta(days=math.floor(day), hours=hour)
            if last_session_end is not None and t <= last_session_end:
                t = last_session_end + timedelta(hours=1)
            if t >= end:
                break
            days_away = (
                30.0
                if last_session_end is None
                else (t - last_session_end).total_seconds() / 86400.0
            )
            planned = 3 + _poisson(r, cfg.items_per_session)
            module = modules[r.randrange(len(modules))]
            engagement = min(0.9, max(0.3, r.gauss(0.6, 0.08)))
            ability_se0 = 1.0 / math.sqrt(0.6 + 0.35 * answered_total)
            target = theta - 0.5 + r.gauss(0.0, ability_se0) + r.gauss(0.0, 0.9)
            session_start = t
            minutes_since_break = 0.0
            help_left = 0
            hist_c: list[int] = []
            hist_rt: list[float] = []
            hist_h: list[int] = []
            open_rows: list[tuple[dict, int]] = []  # decisions awaiting 5 further answers
            session_rows: list[dict] = []
            cons_err = cons_cor = 0
            completed = True
            n_in_session = 0
            while n_in_session < planned:
                bs, idxs = by_module[module]
                pos = _nearest(bs, target + r.gauss(0.0, 1.4))
                i = idxs[pos]
                fatigue = min(1.0, minutes_since_break / 45.0)
                theta_eff = theta - 0.4 * fatigue + (0.3 if help_left > 0 else 0.0)
                help_left = max(0, help_left - 1)
                p = _sigmoid(item_a[i] * (theta_eff - item_b[i]))
                y = 1 if r.random() < p else 0
                rt = math.exp(
                    math.log(55.0)
                    + 0.25 * (item_b[i] - theta_eff)
                    + 0.3 * fatigue
                    + r.gauss(0.0, 0.35)
                )
                hint = 1 if r.random() < _sigmoid(-2.0 + 1.2 * (item_b[i] - theta_eff)) else 0
                rid = f"{SIM_PREFIX}r{len(resp_rows):09d}"
                resp_rows.append(
                    (rid, lhash, item_ids[i], item_mod[i], y, round(rt * 1000.0, 1), t)
                )
                resp_truth.append((rid, theta_eff, p))
                t += timedelta(seconds=rt + 10.0)
                minutes_since_break += (rt + 10.0) / 60.0
                n_in_session += 1
                answered_total += 1
                hist_c.append(y)
                hist_rt.append(rt)
                hist_h.append(hint)
                cons_err = cons_err + 1 if y == 0 else 0
                cons_cor = cons_cor + 1 if y == 1 else 0
                theta += lr * (0.5 + 0.5 * engagement) * (1.0 if y else 0.5) * (ceiling - theta)
                engagement += 0.015 * (y - 0.65) - 0.025 * fatigue + r.gauss(0.0, 0.02)
                engagement = min(1.0, max(0.02, engagement))
                while open_rows and len(hist_c) - open_rows[0][1] >= 5:
                    done, at = open_rows.pop(0)
                    _set_outcome(done, hist_c[at : at + 5], engagement)
                if engagement < 0.4 and r.random() < 0.04:
                    completed = False
                    break
                if n_in_session < 3 or r.random() >= 1.0 / cfg.decision_every:
                    continue
                # --- the agent decides -------------------------------------------------------
                ability_se = max(0.15, 1.0 / math.sqrt(0.6 + 0.35 * answered_total))
                ability_est = theta + r.gauss(0.0, ability_se)
                last5, prev5 = hist_c[-5:], hist_c[-10:-5]
                rt5, rtp5 = hist_rt[-5:], hist_rt[-10:-5]
                x = {
                    "recent_accuracy": sum(last5) / len(last5),
                    "accuracy_trend": (sum(last5) / len(last5) - sum(prev5) / len(prev5))
                    if prev5
                    else 0.0,
                    "avg_response_time_s": sum(rt5) / len(rt5),
                    "response_time_trend": (sum(rt5) / len(rt5) - sum(rtp5) / len(rtp5))
                    if rtp5
                    else 0.0,
                    "consecutive_errors": float(cons_err),
                    "consecutive_correct": float(cons_cor),
                    "hint_rate": sum(hist_h[-10:]) / len(hist_h[-10:]),
                    "current_difficulty": target,
                    "session_minutes": (t - session_start).total_seconds() / 60.0,
                    "minutes_since_break": minutes_since_break,
                    "items_in_session": float(n_in_session),
                    "engagement": min(1.0, max(0.0, engagement + r.gauss(0.0, 0.03))),
                    "hour_of_day": float(t.hour),
                    "ability": ability_est,
                    "ability_se": ability_se,
                    "learning_velocity": lr * (0.5 + 0.5 * engagement) * (ceiling - theta)
                    + r.gauss(0.0, 0.005),
                    "sessions_completed": float(k),
                    "days_since_last_session": days_away,
                }
                xv = np.array([[x[f] for f in FEATURES]])
                logits = teacher_logits(xv)[0]
                probs = teacher_probabilities(xv)[0]
                a_idx = _sample(r, probs)
                ideal = int(np.argmax(logits))
                action = ACTIONS[a_idx]
                in_exp = t >= exp_start
                arm = group if in_exp else None
                conf = float(probs.max())
                if arm is None or arm == "gpt4":
                    decided_by, version = "llm", "gpt4"
                elif arm == "ml" or conf >= 0.6:
                    decided_by, version = "ml", "v0-sim"
                else:
                    decided_by, version = "llm", "gpt4"
                latency = (
                    math.exp(r.gauss(math.log(3.0), 0.3))
                    if decided_by == "ml"
                    else math.exp(r.gauss(math.log(1200.0), 0.35))
                )
                delta = None
                if action == "adjust_difficulty":
                    new_target = ability_est - 0.85
                    delta = new_target - target
                    target = new_target
                elif action == "take_break":
                    minutes_since_break = 0.0
                    engagement = min(1.0, engagement + 0.1)
                    t += timedelta(minutes=5.0 + 5.0 * r.random())
                elif action == "provide_help":
                    help_left = 3
                    engagement = min(1.0, engagement + 0.05)
                elif action == "change_activity":
                    others = [m for m in modules if m != module] or modules
                    module = others[r.randrange(len(others))]
                    engagement = min(1.0, engagement + 0.08)
                engagement += 0.04 if a_idx == ideal else -0.04
                engagement = min(1.0, max(0.02, engagement))
                row = dict(x)
                row.update(
                    decision_id=f"{SIM_PREFIX}d{len(dec_rows):08d}",
                    learner_hash=lhash,
                    timestamp=t,
                    action=action,
                    decided_by=decided_by,
                    confidence=conf,
                    propensity=float(probs[a_idx]),
                    latency_ms=round(latency, 2),
                    model_version=version,
                    difficulty_delta=delta,
                    ab_test=cfg.ab_test if in_exp else None,
                    ab_group=arm,
                    _ideal=ACTIONS[ideal],
                    _probs=probs,
                    _effect=effects.get(arm, 0.0) if arm else 0.0,
                )
                dec_rows.append(row)
                session_rows.append(row)
                open_rows.append((row, len(hist_c)))
            session_ms = (t - session_start).total_seconds() * 1000.0
            for prow, at in open_rows:
                _set_outcome(prow, hist_c[at:], engagement)
            for prow in session_rows:
                prow["session_completed"] = completed
                prow["total_session_time_ms"] = round(session_ms, 1)
            last_session_end = t
        learner_rows.append((lhash, theta_start, theta, lr, group))

    responses = pd.DataFrame(resp_rows, columns=list(RESPONSE_COLUMNS))
    responses["timestamp"] = pd.to_datetime(responses["timestamp"], utc=True)
    truth_cols = [f"p_true_{a}" for a in ACTIONS]
    probs = np.array([d.pop("_probs") for d in dec_rows]).reshape(-1, len(ACTIONS))
    ideal = [d.pop("_ideal") for d in dec_rows]
    for d in dec_rows:
        d.pop("_effect", None)
    decisions = pd.DataFrame(dec_rows, columns=list(DECISION_COLUMNS))
    decisions["timestamp"] = pd.to_datetime(decisions["timestamp"], utc=True)
    decision_truth = pd.DataFrame(probs, columns=truth_cols)
    decision_truth.insert(0, "ideal_action", ideal)
    decision_truth.insert(0, "decision_id", decisions["decision_id"].to_numpy())
    info = {
        "seed": seed,
        "teacher_beta": TEACHER_BETA,
        "bayes_accuracy": float(probs.max(axis=1).mean()) if len(probs) else None,
        "experiment": cfg.ab_test,
        "experiment_start": exp_start.isoformat(),
        "ab_groups": dict(cfg.ab_groups),
        "ab_effect_next_engagement": effects,
        "window": [start.isoformat(), end.isoformat()],
    }
    return Simulation(
        responses=responses,
        decisions=decisions,
        items=items,
        learners=pd.DataFrame(
            learner_rows,
            columns=["learner_hash", "theta_start", "theta_end", "learning_rate", "ab_group"],
        ),
        response_truth=pd.DataFrame(resp_truth, columns=["response_id", "theta", "p_correct"]),
        decision_truth=decision_truth,
        info=info,
    )


def _set_outcome(row: dict, after: list[int], engagement: float) -> None:
    """Outcome of a decision: accuracy over the next (≤5) answers, engagement after them."""
    row["next_accuracy"] = sum(after) / len(after) if after else None
    row["next_engagement"] = min(1.0, max(0.0, engagement + row["_effect"]))


def _poisson(r: random.Random, lam: float) -> int:
    """A Poisson draw (Knuth for small means, rounded normal for large)."""
    if lam <= 0:
        return 0
    if lam > 50:
        return max(0, round(r.gauss(lam, math.sqrt(lam))))
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= r.random()
        if p <= limit:
            return k
        k += 1


def _nearest(sorted_values: np.ndarray, x: float) -> int:
    pos = int(np.searchsorted(sorted_values, x))
    if pos == 0:
        return 0
    if pos >= len(sorted_values):
        return len(sorted_values) - 1
    return pos if sorted_values[pos] - x < x - sorted_values[pos - 1] else pos - 1


def _sample(r: random.Random, probs: np.ndarray) -> int:
    u, acc = r.random(), 0.0
    for k, p in enumerate(probs):
        acc += p
        if u < acc:
            return k
    return len(probs) - 1


def simulate_decisions_table(n: int, seed: int) -> pd.DataFrame:
    """At least ``n`` simulated decisions (first ``n``) with their true policy probabilities."""
    n_learners = max(20, int(n / 12) + 20)
    cfg = SimulateConfig(n_learners=n_learners)
    while True:
        sim = simulate(cfg, seed)
        if len(sim.decisions) >= n:
            break
        cfg = cfg.model_copy(update={"n_learners": cfg.n_learners * 2})
    out = sim.decisions.merge(sim.decision_truth, on="decision_id", how="left")
    return out.iloc[:n].reset_index(drop=True)


def simulate_to_store(params, progress: bool = False) -> Simulation:
    """Run the simulate stage: replace the simulated rows of the event store (one transaction),
    write the truth files and ``<truth_dir>/../simulate.json`` (counts and a content fingerprint,
    the stage's DVC output).

    Model versions, evaluations and other records in the store are kept. A store holding
    decisions or responses that the simulator did not make is refused: nothing is lost.
    """
    from learnops.data.hashing import data_fingerprint
    from learnops.data.store import EventStore
    from learnops.io import write_json

    sim = simulate(params.simulate, params.seed, progress=progress)
    store = EventStore(params.db_url)
    try:
        store.replace_simulated(sim.responses, sim.decisions, SIM_PREFIX, progress=progress)
    finally:
        store.dispose()
    truth = params.path(params.paths.truth_dir)
    sim.save_truth(truth)
    write_json(
        truth.parent / "simulate.json",
        {
            "n_responses": len(sim.responses),
            "n_decisions": len(sim.decisions),
            "n_learners": len(sim.learners),
            "fingerprint": data_fingerprint(sim.responses, sim.decisions),
        },
    )
    return sim
