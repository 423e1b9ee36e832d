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

from learnops.config import SimulateConfig
from learnops.contracts import ACTIONS, DECISION_COLUMNS, FEATURES, RESPONSE_COLUMNS
from learnops.hashing import assign_group, learner_hash

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
    """Per response: ``theta`` (the effective ability it was answered with: fatigue and help
    included), ``p_correct`` (the true probability) and ``ability`` (the learner's true current
    ability just before answering, which grows with practice)."""
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


@dataclass(frozen=True)
class _ItemBank:
    """Items as plain lists for the inner loop, and each module's items sorted by difficulty."""

    modules: list[str]
    by_module: dict[str, tuple[np.ndarray, list[int]]]
    a: list[float]
    b: list[float]
    ids: list[str]
    module_of: list[str]


@dataclass(frozen=True)
class _Timeline:
    """The simulated window, the experiment's start and the true effect of each arm."""

    start: datetime
    end: datetime
    exp_start: datetime
    effects: dict[str, float]


@dataclass
class _Rows:
    """Rows collected over all learners (responses, their truth, decisions, learners)."""

    responses: list[tuple] = field(default_factory=list)
    truth: list[tuple] = field(default_factory=list)
    decisions: list[dict] = field(default_factory=list)
    learners: list[tuple] = field(default_factory=list)


@dataclass
class _Learner:
    """A learner's latent state: ability θ, learning rate, ceiling and answers so far."""

    lhash: str
    group: str
    theta: float
    lr: float
    ceiling: float
    answered: int = 0


@dataclass
class _Session:
    """The state of one session while it runs."""

    k: int
    module: str
    engagement: float
    target: float
    start: datetime
    t: datetime
    days_away: float
    minutes_since_break: float = 0.0
    help_left: int = 0
    hist_c: list[int] = field(default_factory=list)
    hist_rt: list[float] = field(default_factory=list)
    hist_h: list[int] = field(default_factory=list)
    open_rows: list[tuple[dict, int]] = field(default_factory=list)  # awaiting 5 more answers
    rows: list[dict] = field(default_factory=list)
    cons_err: int = 0
    cons_cor: int = 0
    completed: bool = True
    n: int = 0


def simulate(cfg: SimulateConfig, seed: int, progress: bool = False) -> Simulation:
    """Simulate a population of learners, their answers and the agent's decisions."""
    ss = np.random.SeedSequence(seed)
    item_seq, learner_seq = ss.spawn(2)
    items = _make_items(cfg, np.random.default_rng(item_seq))
    bank = _item_bank(items)
    tl = _timeline(cfg)
    rows = _Rows()
    child_seeds = learner_seq.generate_state(cfg.n_learners)
    learner_iter = range(cfg.n_learners)
    if progress:
        from tqdm.auto import tqdm

        learner_iter = tqdm(learner_iter, desc="simulate learners", unit="learner")
    for j in learner_iter:
        rng = random.Random(int(child_seeds[j]))  # seeded simulation, not security  # nosec B311
        _simulate_learner(j, rng, cfg, bank, tl, rows)
    return _assemble(cfg, seed, tl, items, rows)


def _item_bank(items: pd.DataFrame) -> _ItemBank:
    """The item table as an :class:`_ItemBank`."""
    modules = sorted(items["module"].unique())
    by_module: dict[str, tuple[np.ndarray, list[int]]] = {}
    for m in modules:
        idx = items.index[items["module"] == m].to_numpy()
        order = np.argsort(items.loc[idx, "difficulty"].to_numpy(), kind="stable")
        by_module[m] = (items.loc[idx[order], "difficulty"].to_numpy(), idx[order].tolist())
    return _ItemBank(
        modules=modules,
        by_module=by_module,
        a=items["discrimination"].to_numpy().tolist(),
        b=items["difficulty"].to_numpy().tolist(),
        ids=items["item_id"].tolist(),
        module_of=items["module"].tolist(),
    )


def _timeline(cfg: SimulateConfig) -> _Timeline:
    """The window ``[end_date − days, end_date)``; the experiment runs over its second half."""
    end = datetime.combine(cfg.end_date, datetime.min.time(), tzinfo=UTC)
    start = end - timedelta(days=cfg.days)
    return _Timeline(
        start=start,
        end=end,
        exp_start=start + timedelta(days=cfg.days / 2),
        effects={g: cfg.ab_effect.get(g, 0.0) for g in cfg.ab_groups},
    )


def _simulate_learner(
    j: int,
    r: random.Random,
    cfg: SimulateConfig,
    bank: _ItemBank,
    tl: _Timeline,
    rows: _Rows,
) -> None:
    """Simulate learner ``j``'s sessions, appending their rows to ``rows``."""
    lhash = learner_hash(f"sim-learner-{j:06d}")
    group = assign_group(cfg.ab_test, lhash, cfg.ab_groups)
    learner, pref_hour = _new_learner(r, cfg, lhash, group)
    theta, lr = learner.theta, learner.lr  # the initial ability (θ grows with practice)
    n_sessions = 1 + _poisson(r, cfg.sessions_per_learner - 1)
    days = sorted(r.uniform(0.0, cfg.days - 0.05) for _ in range(n_sessions))
    last_session_end: datetime | None = None
    for k, day in enumerate(days):
        hour = min(23.5, max(0.0, r.gauss(pref_hour, 1.5)))
        t = tl.start + timedelta(days=math.floor(day), hours=hour)
        if last_session_end is not None and t <= last_session_end:
            t = last_session_end + timedelta(hours=1)
        if t >= tl.end:
            break
        days_away = (
            30.0 if last_session_end is None else (t - last_session_end).total_seconds() / 86400.0
        )
        last_session_end = _run_session(r, cfg, bank, tl, learner, k, t, days_away, rows)
    rows.learners.append((lhash, theta, learner.theta, lr, group))


def _new_learner(
    r: random.Random, cfg: SimulateConfig, lhash: str, group: str
) -> tuple[_Learner, float]:
    """A new learner's latent state and preferred hour of the day (the draws in this order:
    ability, learning rate, ceiling, hour)."""
    theta = r.gauss(0.0, 1.0)
    lr = cfg.learning_rate * math.exp(r.gauss(0.0, 0.4))
    # practice closes the gap to a learner-specific ceiling (diminishing returns)
    ceiling = theta + max(0.3, r.gauss(1.5, 0.5))
    pref_hour = min(22.0, max(7.0, r.gauss(17.0, 3.0)))
    return _Learner(lhash, group, theta, lr, ceiling), pref_hour


def _start_session(
    r: random.Random,
    cfg: SimulateConfig,
    bank: _ItemBank,
    learner: _Learner,
    k: int,
    t: datetime,
    days_away: float,
) -> tuple[int, _Session]:
    """Session ``k`` starting at ``t``: its planned number of items and its initial state
    (module, engagement, target difficulty), drawn in this order."""
    planned = 3 + _poisson(r, cfg.items_per_session)
    module = bank.modules[r.randrange(len(bank.modules))]
    engagement = min(0.9, max(0.3, r.gauss(0.6, 0.08)))
    ability_se0 = 1.0 / math.sqrt(0.6 + 0.35 * learner.answered)
    target = learner.theta - 0.5 + r.gauss(0.0, ability_se0) + r.gauss(0.0, 0.9)
    return planned, _Session(k, module, engagement, target, start=t, t=t, days_away=days_away)


def _run_session(
    r: random.Random,
    cfg: SimulateConfig,
    bank: _ItemBank,
    tl: _Timeline,
    learner: _Learner,
    k: int,
    t: datetime,
    days_away: float,
    rows: _Rows,
) -> datetime:
    """Simulate session ``k`` starting at ``t``; returns when it ended."""
    planned, s = _start_session(r, cfg, bank, learner, k, t, days_away)
    while s.n < planned:
        _answer(r, bank, learner, s, rows)
        if s.engagement < 0.4 and r.random() < 0.04:
            s.completed = False
            break
        if s.n < 3 or r.random() >= 1.0 / cfg.decision_every:
            continue
        _decide(r, cfg, bank, tl, learner, s, rows)
    session_ms = (s.t - s.start).total_seconds() * 1000.0
    for prow, at in s.open_rows:
        _set_outcome(prow, s.hist_c[at:], s.engagement)
    for prow in s.rows:
        prow["session_completed"] = s.completed
        prow["total_session_time_ms"] = round(session_ms, 1)
    return s.t


def _answer(r: random.Random, bank: _ItemBank, learner: _Learner, s: _Session, rows: _Rows) -> None:
    """The learner answers one item near the session's target difficulty (2PL truth); ability,
    engagement and the outcomes of earlier decisions are updated."""
    bs, idxs = bank.by_module[s.module]
    pos = _nearest(bs, s.target + r.gauss(0.0, 1.4))
    i = idxs[pos]
    fatigue = min(1.0, s.minutes_since_break / 45.0)
    theta_eff = learner.theta - 0.4 * fatigue + (0.3 if s.help_left > 0 else 0.0)
    s.help_left = max(0, s.help_left - 1)
    p = _sigmoid(bank.a[i] * (theta_eff - bank.b[i]))
    y = 1 if r.random() < p else 0
    rt = math.exp(
        math.log(55.0) + 0.25 * (bank.b[i] - theta_eff) + 0.3 * fatigue + r.gauss(0.0, 0.35)
    )
    hint = 1 if r.random() < _sigmoid(-2.0 + 1.2 * (bank.b[i] - theta_eff)) else 0
    rid = f"{SIM_PREFIX}r{len(rows.responses):09d}"
    rows.responses.append(
        (rid, learner.lhash, bank.ids[i], bank.module_of[i], y, round(rt * 1000.0, 1), s.t)
    )
    rows.truth.append((rid, theta_eff, p, learner.theta))
    s.t += timedelta(seconds=rt + 10.0)
    s.minutes_since_break += (rt + 10.0) / 60.0
    s.n += 1
    learner.answered += 1
    s.hist_c.append(y)
    s.hist_rt.append(rt)
    s.hist_h.append(hint)
    s.cons_err = s.cons_err + 1 if y == 0 else 0
    s.cons_cor = s.cons_cor + 1 if y == 1 else 0
    gain = learner.lr * (0.5 + 0.5 * s.engagement) * (1.0 if y else 0.5)
    learner.theta += gain * (learner.ceiling - learner.theta)
    engagement = s.engagement + (0.015 * (y - 0.65) - 0.025 * fatigue + r.gauss(0.0, 0.02))
    s.engagement = min(1.0, max(0.02, engagement))
    while s.open_rows and len(s.hist_c) - s.open_rows[0][1] >= 5:
        done, at = s.open_rows.pop(0)
        _set_outcome(done, s.hist_c[at : at + 5], s.engagement)


def _features(r: random.Random, learner: _Learner, s: _Session) -> dict[str, float]:
    """The 18 features the agent sees (noisy ability, engagement and velocity estimates)."""
    theta, lr, ceiling, engagement = learner.theta, learner.lr, learner.ceiling, s.engagement
    ability_se = max(0.15, 1.0 / math.sqrt(0.6 + 0.35 * learner.answered))
    ability_est = theta + r.gauss(0.0, ability_se)
    last5, prev5 = s.hist_c[-5:], s.hist_c[-10:-5]
    rt5, rtp5 = s.hist_rt[-5:], s.hist_rt[-10:-5]
    return {
        "recent_accuracy": sum(last5) / len(last5),
        "accuracy_trend": (sum(last5) / len(last5) - sum(prev5) / len(prev5)) if prev5 else 0.0,
        "avg_response_time_s": sum(rt5) / len(rt5),
        "response_time_trend": (sum(rt5) / len(rt5) - sum(rtp5) / len(rtp5)) if rtp5 else 0.0,
        "consecutive_errors": float(s.cons_err),
        "consecutive_correct": float(s.cons_cor),
        "hint_rate": sum(s.hist_h[-10:]) / len(s.hist_h[-10:]),
        "current_difficulty": s.target,
        "session_minutes": (s.t - s.start).total_seconds() / 60.0,
        "minutes_since_break": s.minutes_since_break,
        "items_in_session": float(s.n),
        "engagement": min(1.0, max(0.0, engagement + r.gauss(0.0, 0.03))),
        "hour_of_day": float(s.t.hour),
        "ability": ability_est,
        "ability_se": ability_se,
        "learning_velocity": lr * (0.5 + 0.5 * engagement) * (ceiling - theta)
        + r.gauss(0.0, 0.005),
        "sessions_completed": float(s.k),
        "days_since_last_session": s.days_away,
    }


def _decider(r: random.Random, arm: str | None, conf: float) -> tuple[str, str, float]:
    """(decided_by, model_version, latency in ms) under the experiment arm (None: before it)."""
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
    return decided_by, version, latency


def _apply_action(
    r: random.Random, action: str, ability_est: float, modules: list[str], s: _Session
) -> float | None:
    """The action's effect on the session; returns the difficulty change (or None)."""
    delta = None
    if action == "adjust_difficulty":
        new_target = ability_est - 0.85
        delta = new_target - s.target
        s.target = new_target
    elif action == "take_break":
        s.minutes_since_break = 0.0
        s.engagement = min(1.0, s.engagement + 0.1)
        s.t += timedelta(minutes=5.0 + 5.0 * r.random())
    elif action == "provide_help":
        s.help_left = 3
        s.engagement = min(1.0, s.engagement + 0.05)
    elif action == "change_activity":
        others = [m for m in modules if m != s.module] or modules
        s.module = others[r.randrange(len(others))]
        s.engagement = min(1.0, s.engagement + 0.08)
    return delta


def _decide(
    r: random.Random,
    cfg: SimulateConfig,
    bank: _ItemBank,
    tl: _Timeline,
    learner: _Learner,
    s: _Session,
    rows: _Rows,
) -> None:
    """The agent decides: the teacher samples an action, which acts on the session."""
    x = _features(r, learner, s)
    xv = np.array([[x[f] for f in FEATURES]])
    logits = teacher_logits(xv)[0]
    probs = teacher_probabilities(xv)[0]
    a_idx = _sample(r, probs)
    ideal = int(np.argmax(logits))
    action = ACTIONS[a_idx]
    in_exp = s.t >= tl.exp_start
    arm = learner.group if in_exp else None
    conf = float(probs.max())
    decided_by, version, latency = _decider(r, arm, conf)
    delta = _apply_action(r, action, x["ability"], bank.modules, s)
    engagement = s.engagement + (0.04 if a_idx == ideal else -0.04)
    s.engagement = min(1.0, max(0.02, engagement))
    row = dict(x)
    row.update(
        decision_id=f"{SIM_PREFIX}d{len(rows.decisions):08d}",
        learner_hash=learner.lhash,
        timestamp=s.t,
        action=action,
        decided_by=decided_by,
        confidence=conf,
        propensity=float(probs[a_idx]),
        **{f"p_{name}": float(v) for name, v in zip(ACTIONS, probs, strict=True)},
        explored=False,
        latency_ms=round(latency, 2),
        model_version=version,
        difficulty_delta=delta,
        ab_test=cfg.ab_test if in_exp else None,
        ab_group=arm,
        _ideal=ACTIONS[ideal],
        _probs=probs,
        _effect=tl.effects.get(arm, 0.0) if arm else 0.0,
    )
    rows.decisions.append(row)
    s.rows.append(row)
    s.open_rows.append((row, len(s.hist_c)))


def _assemble(
    cfg: SimulateConfig, seed: int, tl: _Timeline, items: pd.DataFrame, rows: _Rows
) -> Simulation:
    """The collected rows as a :class:`Simulation` (export-format tables and their truth)."""
    responses = pd.DataFrame(rows.responses, columns=list(RESPONSE_COLUMNS))
    responses["timestamp"] = pd.to_datetime(responses["timestamp"], utc=True)
    dec_rows = rows.decisions
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
        "experiment_start": tl.exp_start.isoformat(),
        "ab_groups": dict(cfg.ab_groups),
        "ab_effect_next_engagement": tl.effects,
        "window": [tl.start.isoformat(), tl.end.isoformat()],
    }
    return Simulation(
        responses=responses,
        decisions=decisions,
        items=items,
        learners=pd.DataFrame(
            rows.learners,
            columns=["learner_hash", "theta_start", "theta_end", "learning_rate", "ab_group"],
        ),
        response_truth=pd.DataFrame(
            rows.truth, columns=["response_id", "theta", "p_correct", "ability"]
        ),
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


#: The simulate stage's headline when ``data.source`` is ``store``.
STORE_SOURCE = "data.source=store"
#: The only file of the truth folder with ``data.source: store`` (a DVC output can't be empty).
NO_TRUTH_NOTE = "NO_TRUTH.txt"


def skip_simulation(params) -> dict[str, int]:
    """The simulate stage with ``data.source: store``: simulate nothing, remove the simulator's
    own rows from the event store (ids starting with :data:`SIM_PREFIX`; one transaction; the
    rows the user imported or the server logged are untouched), replace the truth folder by a
    note (:data:`NO_TRUTH_NOTE`: there is no known truth for real data) and write
    ``simulate.json`` as a skip record.

    Returns the number of simulated rows removed per table (0 when there were none)."""
    import shutil

    from learnops.data.store import EventStore
    from learnops.io import write_json, write_text

    store = EventStore(params.db_url)
    try:
        removed = store.remove_simulated(SIM_PREFIX)
    finally:
        store.dispose()
    truth = params.path(params.paths.truth_dir)
    if truth.exists():
        shutil.rmtree(truth)
    truth.mkdir(parents=True, exist_ok=True)
    write_text(truth / NO_TRUTH_NOTE, f"{STORE_SOURCE}: real data have no known truth.\n")
    write_json(
        truth.parent / "simulate.json",
        {
            "skipped": True,
            "reason": f"{STORE_SOURCE}: the pipeline reads the rows of the event store as they are",
        },
    )
    return removed


def simulate_to_store(params, progress: bool = False) -> Simulation:
    """Run the simulate stage: replace the simulated rows of the event store (one transaction),
    write the truth files and ``<truth_dir>/../simulate.json`` (counts and a content fingerprint,
    the stage's DVC output).

    Model versions, evaluations and other records in the store are kept. A store holding
    decisions or responses that the simulator did not make is refused: nothing is lost.
    """
    from learnops.data.store import EventStore
    from learnops.hashing import data_fingerprint
    from learnops.io import write_json

    sim = simulate(params.simulate, params.seed, progress=progress)
    store = EventStore(params.db_url)
    try:
        store.replace_simulated(sim.responses, sim.decisions, SIM_PREFIX, progress=progress)
    finally:
        store.dispose()
    truth = params.path(params.paths.truth_dir)
    (truth / NO_TRUTH_NOTE).unlink(missing_ok=True)  # left by a run with data.source: store
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
