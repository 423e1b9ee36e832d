"""Off-policy evaluation: the value of a target policy from decisions logged by another policy.

Notation: n logged rows, K actions. ``r`` the observed reward, ``a`` the logged action index,
``p_log`` the logging policy's probability of that action (the propensity), ``pi`` the (n, K)
target-policy probabilities, ``q_hat`` an optional (n, K) reward model. Importance weights are
w_i = pi[i, a_i] / p_log_i. Every estimator is a mean of per-row influence terms; its standard
error treats rows as independent, or, with ``groups`` (learner ids), is cluster-robust: the terms
are summed within each learner and SE² = G/(G−1) · Σ_g (Σ_{i∈g} ψ_i)² / n², the cluster-robust
variance of a mean (statsmodels' ``cov_type="cluster"`` for a regression on a constant).
Decisions of one learner share the learner, so their rewards are correlated: row-independent
errors are then too small. Intervals are normal approximations.

On a decisions table, :func:`logged_decisions` validates and extracts what OPE needs (dropping
rows whose reward is not posted yet), :func:`check_coverage` refuses target policies the logging
policy never explored, and :func:`evaluate_policy` gives IPS, SNIPS and DR (reward model
cross-fitted with folds grouped by learner) with learner-clustered errors, next to the logged
policy's observed mean.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt
from scipy import stats
from sklearn.ensemble import GradientBoostingRegressor
from sklearn.linear_model import Ridge
from sklearn.model_selection import GroupKFold, KFold

from learnops.contracts import ACTIONS, FEATURES, LOGGING_PROB_COLUMNS
from learnops.errors import LearnopsError

if TYPE_CHECKING:
    import pandas as pd

#: Reward-model kinds of :func:`fit_reward_model`.
RewardKind = Literal["ridge", "gbm"]


@dataclass(frozen=True)
class OPEResult:
    """One off-policy estimate of a policy's mean reward (``n_learners``: the number of clusters
    of a learner-clustered standard error, None when rows were treated as independent)."""

    estimator: str
    value: float
    se: float
    ci_low: float
    ci_high: float
    n: int
    n_learners: int | None
    ess: float
    max_weight: float

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


def _inputs(
    r: npt.ArrayLike, p_log: npt.ArrayLike, pi: npt.ArrayLike, a: npt.ArrayLike
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rr = np.asarray(r, dtype=float)
    pl = np.asarray(p_log, dtype=float)
    pp = np.asarray(pi, dtype=float)
    aa = np.asarray(a)
    if rr.ndim != 1 or rr.size == 0:
        raise LearnopsError("rewards must be a non-empty 1-D array")
    n = rr.size
    if pl.shape != (n,) or aa.shape != (n,):
        raise LearnopsError("rewards, propensities and actions must have the same length")
    if pp.ndim != 2 or pp.shape[0] != n:
        raise LearnopsError(f"target policy must be an (n, K) array with n={n}, got {pp.shape}")
    k = pp.shape[1]
    if not np.all(np.isfinite(rr)):
        raise LearnopsError(f"{int(np.sum(~np.isfinite(rr)))} reward(s) are missing")
    missing = ~np.isfinite(pl)
    if missing.any():
        raise LearnopsError(
            f"{int(missing.sum())} logged propensit(y/ies) are missing; off-policy evaluation "
            "needs the logging policy's probability of every logged action"
        )
    if np.any(pl <= 0):
        raise LearnopsError(
            f"{int(np.sum(pl <= 0))} logged propensit(y/ies) are zero or negative; a logged "
            "action must have had positive probability"
        )
    if np.any(pl > 1 + 1e-9):
        raise LearnopsError("logged propensities must be at most 1")
    if aa.dtype.kind not in "iu" and not (aa.dtype.kind == "f" and np.all(aa == np.round(aa))):
        raise LearnopsError("logged actions must be integer indices 0..K-1")
    aa = aa.astype(int)
    if aa.min() < 0 or aa.max() >= k:
        raise LearnopsError(f"logged actions must be in 0..{k - 1}")
    if not np.all(np.isfinite(pp)) or np.any(pp < 0):
        raise LearnopsError("target policy probabilities must be finite and non-negative")
    if np.any(np.abs(pp.sum(axis=1) - 1) > 1e-6):
        raise LearnopsError("target policy probabilities must sum to 1 in every row")
    return rr, pl, pp, aa


def _groups(groups: npt.ArrayLike | None, n: int) -> np.ndarray | None:
    """Cluster codes 0..G-1 of ``groups`` (None stays None)."""
    if groups is None:
        return None
    g = np.asarray(groups)
    if g.shape != (n,):
        raise LearnopsError(f"groups must have one learner id per row ({n}), got {g.shape}")
    if g.dtype.kind == "O":
        if any(v is None or v != v for v in g.tolist()):  # None or NaN
            raise LearnopsError("groups (learner ids) must not be missing")
        g = g.astype(str)
    return np.unique(g, return_inverse=True)[1].reshape(n)


def _weights(pl: np.ndarray, pp: np.ndarray, aa: np.ndarray) -> np.ndarray:
    """pi[i, a_i] / p_log_i on already validated inputs."""
    return pp[np.arange(pl.size), aa] / pl


def effective_sample_size(w: npt.ArrayLike) -> float:
    """Kish effective sample size (Σw)² / Σw² of importance weights (0 when all are 0)."""
    ww = np.asarray(w, dtype=float)
    s2 = float(np.sum(ww**2))
    return float(np.sum(ww) ** 2 / s2) if s2 > 0 else 0.0


def cluster_se(influence: npt.ArrayLike, groups: npt.ArrayLike) -> float:
    """Cluster-robust standard error of a mean whose centred per-row influence terms are
    ``influence``: sqrt(G/(G−1) · Σ_g (Σ_{i∈g} ψ_i)²) / n (NaN with fewer than 2 clusters).

    For ψ_i = t_i − mean(t) this is statsmodels'
    ``OLS(t, ones).fit(cov_type="cluster", cov_kwds={"groups": groups}).bse``."""
    psi = np.asarray(influence, dtype=float)
    codes = _groups(groups, psi.size)
    assert codes is not None  # groups is not None  # nosec B101
    n_clusters = int(codes.max()) + 1 if codes.size else 0
    if n_clusters < 2:
        return float("nan")
    sums = np.bincount(codes, weights=psi, minlength=n_clusters)
    var = n_clusters / (n_clusters - 1) * float(np.sum(sums**2)) / psi.size**2
    return float(np.sqrt(var))


def _result(
    name: str, value: float, se: float, w: np.ndarray, alpha: float, n_learners: int | None
) -> OPEResult:
    z = float(stats.norm.ppf(1 - alpha / 2))
    return OPEResult(
        estimator=name,
        value=float(value),
        se=float(se),
        ci_low=float(value - z * se),
        ci_high=float(value + z * se),
        n=int(w.size),
        n_learners=n_learners,
        ess=effective_sample_size(w),
        max_weight=float(w.max()),
    )


def _n_clusters(codes: np.ndarray | None) -> int | None:
    return None if codes is None else int(codes.max()) + 1


def _mean_and_se(terms: np.ndarray, codes: np.ndarray | None) -> tuple[float, float]:
    """Mean of ``terms`` and its standard error (cluster-robust with cluster ``codes``)."""
    n = terms.size
    mean = float(terms.mean())
    if codes is not None:
        return mean, cluster_se(terms - mean, codes)
    se = float(terms.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan")
    return mean, se


def ips(
    r: npt.ArrayLike,
    p_log: npt.ArrayLike,
    pi: npt.ArrayLike,
    a: npt.ArrayLike,
    alpha: float = 0.05,
    groups: npt.ArrayLike | None = None,
) -> OPEResult:
    """Inverse propensity scoring: mean of w_i·r_i (unbiased when propensities are correct);
    learner-clustered SE when ``groups`` (one learner id per row) is given."""
    rr, pl, pp, aa = _inputs(r, p_log, pi, a)
    codes = _groups(groups, rr.size)
    w = _weights(pl, pp, aa)
    value, se = _mean_and_se(w * rr, codes)
    return _result("ips", value, se, w, alpha, _n_clusters(codes))


def snips(
    r: npt.ArrayLike,
    p_log: npt.ArrayLike,
    pi: npt.ArrayLike,
    a: npt.ArrayLike,
    alpha: float = 0.05,
    groups: npt.ArrayLike | None = None,
) -> OPEResult:
    """Self-normalized IPS: Σ w_i·r_i / Σ w_i (biased but bounded by the reward range). SE by
    the delta method, from the linearized influence terms ψ_i = w_i(r_i − v) / mean(w):
    sqrt(Σ ψ_i²) / n for independent rows, cluster-robust with ``groups``."""
    rr, pl, pp, aa = _inputs(r, p_log, pi, a)
    codes = _groups(groups, rr.size)
    w = _weights(pl, pp, aa)
    sw = float(w.sum())
    if sw <= 0:
        raise LearnopsError("the target policy gives probability 0 to every logged action")
    value = float(np.sum(w * rr) / sw)
    if codes is None:
        se = float(np.sqrt(np.sum(w**2 * (rr - value) ** 2)) / sw)
    else:
        se = cluster_se(w * (rr - value) / (sw / rr.size), codes)
    return _result("snips", value, se, w, alpha, _n_clusters(codes))


def doubly_robust(
    r: npt.ArrayLike,
    p_log: npt.ArrayLike,
    pi: npt.ArrayLike,
    a: npt.ArrayLike,
    q_hat: npt.ArrayLike,
    alpha: float = 0.05,
    groups: npt.ArrayLike | None = None,
) -> OPEResult:
    """Doubly robust: mean of Σ_k pi_ik·q̂_ik + w_i·(r_i − q̂_{i,a_i}); unbiased if either the
    propensities or the reward model are correct, and lower-variance than IPS when q̂ is good.
    Learner-clustered SE when ``groups`` is given."""
    rr, pl, pp, aa = _inputs(r, p_log, pi, a)
    codes = _groups(groups, rr.size)
    q = np.asarray(q_hat, dtype=float)
    if q.shape != pp.shape:
        raise LearnopsError(f"reward model must be {pp.shape}, got {q.shape}")
    if not np.all(np.isfinite(q)):
        raise LearnopsError("reward model predictions contain NaN or infinite values")
    rows = np.arange(rr.size)
    w = _weights(pl, pp, aa)
    terms = np.sum(pp * q, axis=1) + w * (rr - q[rows, aa])
    value, se = _mean_and_se(terms, codes)
    return _result("dr", value, se, w, alpha, _n_clusters(codes))


def off_policy_evaluation(
    r: npt.ArrayLike,
    p_log: npt.ArrayLike,
    pi: npt.ArrayLike,
    a: npt.ArrayLike,
    q_hat: npt.ArrayLike | None = None,
    alpha: float = 0.05,
    groups: npt.ArrayLike | None = None,
) -> dict[str, OPEResult]:
    """IPS, SNIPS and (when ``q_hat`` is given) DR estimates, keyed by estimator name; with
    ``groups`` (learner ids) their standard errors are learner-clustered."""
    out = {
        "ips": ips(r, p_log, pi, a, alpha, groups),
        "snips": snips(r, p_log, pi, a, alpha, groups),
    }
    if q_hat is not None:
        out["dr"] = doubly_robust(r, p_log, pi, a, q_hat, alpha, groups)
    return out


class RewardModel:
    """Per-action regression of reward on features; ``predict`` gives an (n, K) reward matrix.

    Actions never logged predict the overall mean reward.
    """

    def __init__(self, models: list[Any | None], fallback: float, n_features: int) -> None:
        self.models = models
        self.fallback = float(fallback)
        self.n_features = n_features

    @property
    def n_actions(self) -> int:
        return len(self.models)

    def predict(self, X: npt.ArrayLike) -> np.ndarray:
        """Predicted reward of every action for every row of ``X``: shape (n, K)."""
        xx = np.asarray(X, dtype=float)
        if xx.ndim != 2 or xx.shape[1] != self.n_features:
            raise LearnopsError(f"X must be (n, {self.n_features}), got {xx.shape}")
        out = np.full((xx.shape[0], self.n_actions), self.fallback)
        for k, m in enumerate(self.models):
            if m is not None:
                out[:, k] = m.predict(xx)
        return out


def fit_reward_model(
    X: npt.ArrayLike,
    a: npt.ArrayLike,
    r: npt.ArrayLike,
    n_actions: int,
    kind: RewardKind = "ridge",
    ridge_alpha: float = 1.0,
    seed: int = 0,
) -> RewardModel:
    """Fit one regressor of r on X per action (scikit-learn Ridge or GradientBoosting);
    deterministic given ``seed``."""
    xx = np.asarray(X, dtype=float)
    aa = np.asarray(a).astype(int)
    rr = np.asarray(r, dtype=float)
    if xx.ndim != 2 or xx.shape[0] != aa.size or rr.shape != aa.shape:
        raise LearnopsError("X must be (n, d) with one action and one reward per row")
    if xx.shape[0] == 0:
        raise LearnopsError("no rows to fit a reward model on")
    if not (np.all(np.isfinite(xx)) and np.all(np.isfinite(rr))):
        raise LearnopsError("X and rewards must not contain missing values")
    if aa.min() < 0 or aa.max() >= n_actions:
        raise LearnopsError(f"actions must be in 0..{n_actions - 1}")
    if kind not in ("ridge", "gbm"):
        raise LearnopsError(f"reward model kind must be 'ridge' or 'gbm', not {kind!r}")
    models: list[Any | None] = []
    for k in range(n_actions):
        mask = aa == k
        if not mask.any():
            models.append(None)
            continue
        if kind == "ridge":
            m: Any = Ridge(alpha=ridge_alpha)
        else:
            m = GradientBoostingRegressor(random_state=seed, n_estimators=100, max_depth=3)
        m.fit(xx[mask], rr[mask])
        models.append(m)
    return RewardModel(models, float(rr.mean()), xx.shape[1])


def cross_fit_rewards(
    X: npt.ArrayLike,
    a: npt.ArrayLike,
    r: npt.ArrayLike,
    n_actions: int,
    n_folds: int = 2,
    kind: RewardKind = "ridge",
    seed: int = 0,
    groups: npt.ArrayLike | None = None,
) -> np.ndarray:
    """Out-of-fold (n, K) reward predictions: each row predicted by a model not fitted on it
    (avoids the small overfitting bias of using in-sample predictions in DR).

    With ``groups`` (learner ids) the folds are whole learners (scikit-learn ``GroupKFold``, at
    most one fold per learner): no learner is in both a model's training rows and the rows it
    predicts, so a learner's own correlated rewards never leak into its predictions.
    Deterministic given the data and ``seed``."""
    xx = np.asarray(X, dtype=float)
    aa = np.asarray(a).astype(int)
    rr = np.asarray(r, dtype=float)
    if n_folds < 2:
        raise LearnopsError("n_folds must be at least 2")
    codes = _groups(groups, xx.shape[0])
    if codes is None:
        splits = KFold(n_folds, shuffle=True, random_state=seed).split(xx)
    else:
        n_clusters = int(codes.max()) + 1 if codes.size else 0
        if n_clusters < 2:
            raise LearnopsError("cross-fitting by learner needs at least 2 learners")
        splits = GroupKFold(min(n_folds, n_clusters)).split(xx, groups=codes)
    q = np.empty((xx.shape[0], n_actions))
    for train, test in splits:
        model = fit_reward_model(xx[train], aa[train], rr[train], n_actions, kind=kind, seed=seed)
        q[test] = model.predict(xx[test])
    return q


# -- off-policy evaluation of a decisions table -------------------------------------------------
def check_coverage(
    pi: npt.ArrayLike, p_logged: npt.ArrayLike, actions: tuple[str, ...] = ACTIONS
) -> None:
    """Refuse a target policy that puts positive probability on actions the logging policy gave
    probability 0 (``p_logged``: the (n, K) logging distribution of every row). Those actions
    were never tried in those situations, so no estimator can tell their value from the logs
    (importance weights are infinite, the reward model extrapolates): a LearnopsError names how
    many rows and which actions."""
    pp = np.asarray(pi, dtype=float)
    pl = np.asarray(p_logged, dtype=float)
    if pp.shape != pl.shape:
        raise LearnopsError(f"target {pp.shape} and logging {pl.shape} distributions differ")
    gap = (pp > 0) & (pl <= 0)
    rows = gap.any(axis=1)
    if not rows.any():
        return
    per_action = gap.sum(axis=0)
    which = ", ".join(
        f"{act} ({int(c)} rows)" for act, c in zip(actions, per_action, strict=True) if c
    )
    raise LearnopsError(
        f"the target policy is not covered by the logging policy in {int(rows.sum())} of "
        f"{rows.size} rows: it may take actions the logging policy gave probability 0 there "
        f"({which}). Their value cannot be estimated from these logs: evaluate on decisions "
        "logged with exploration (serve.epsilon > 0), or a target policy that stays within "
        "the logged support"
    )


@dataclass(frozen=True)
class LoggedDecisions:
    """What off-policy evaluation needs from a decisions table, validated.

    ``rows`` are the positions (in the table) of the rows kept: those whose reward is posted.
    ``p_all`` is the logging distribution (ACTIONS order), None when the table has no
    ``p_<action>`` columns.
    """

    X: np.ndarray
    a: np.ndarray
    r: np.ndarray
    p_log: np.ndarray
    p_all: np.ndarray | None
    groups: np.ndarray
    rows: np.ndarray
    reward: str
    dropped_missing_reward: int

    @property
    def n(self) -> int:
        return int(self.r.size)

    @property
    def n_learners(self) -> int:
        return int(np.unique(self.groups).size)


def _count(mask: np.ndarray, what: str) -> str:
    return f"{int(mask.sum())} of {mask.size} decision(s) {what}"


def logged_decisions(df: pd.DataFrame, reward: str = "next_engagement") -> LoggedDecisions:
    """Validate a decisions table for off-policy evaluation and extract its arrays.

    Needs ``learner_hash``, the 18 features, ``action``, ``propensity`` and the ``reward`` column;
    uses the logging distribution ``p_<action>`` when the table has it (all five columns, not all
    empty). Raises LearnopsError (nothing is guessed) when a propensity, a feature, a learner id
    or (when logged) a row's ``p_<action>`` is missing, when an action is unknown, or when a
    propensity disagrees with its row's ``p_<logged action>``. Rows whose reward is missing (an
    outcome not posted yet) are dropped and counted; none left is an error.
    """
    import pandas as pd

    need = ["learner_hash", *FEATURES, "action", "propensity", reward]
    missing_cols = [c for c in dict.fromkeys(need) if c not in df.columns]
    if missing_cols:
        raise LearnopsError(f"decisions table lacks column(s): {', '.join(missing_cols)}")
    if df.empty:
        raise LearnopsError("no decisions to evaluate")
    prop = pd.to_numeric(df["propensity"], errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(prop)
    if bad.any():
        raise LearnopsError(
            f"{_count(bad, 'have no propensity')} (logged before propensities were recorded?); "
            "off-policy evaluation needs the logging policy's probability of every logged "
            "action: filter those rows out (e.g. --where) or export a later window"
        )
    has_dist = all(c in df.columns for c in LOGGING_PROB_COLUMNS) and bool(
        df[list(LOGGING_PROB_COLUMNS)].notna().to_numpy().any()
    )
    p_all = None
    if has_dist:
        p_all = df[list(LOGGING_PROB_COLUMNS)].apply(pd.to_numeric, errors="coerce").to_numpy(float)
        bad = ~np.isfinite(p_all).all(axis=1)
        if bad.any():
            raise LearnopsError(
                f"{_count(bad, 'have no logging distribution')} (p_continue … "
                "p_change_activity): it is needed to check that the logs cover the target "
                "policy"
            )
    actions = df["action"].astype("string")
    unknown = ~actions.isin(ACTIONS).fillna(False).to_numpy(dtype=bool)
    if unknown.any():
        names = sorted({str(v) for v in actions[unknown].tolist()})
        raise LearnopsError(f"unknown logged action(s) {names}; expected one of {ACTIONS}")
    a = np.array([ACTIONS.index(v) for v in actions.tolist()], dtype=int)
    if p_all is not None:
        off = np.abs(p_all[np.arange(a.size), a] - prop) > 1e-6
        if off.any():
            raise LearnopsError(
                f"{_count(off, 'have a propensity that differs from p_<logged action>')}: "
                "the logs are inconsistent"
            )
    X = df[list(FEATURES)].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(X).all(axis=1)
    if bad.any():
        raise LearnopsError(f"{_count(bad, 'have missing or non-numeric features')}")
    groups = df["learner_hash"]
    bad = groups.isna().to_numpy(dtype=bool)
    if bad.any():
        raise LearnopsError(f"{_count(bad, 'have no learner_hash')}")
    try:  # numbers, booleans (0/1), numeric strings; missing values stay missing
        r = df[reward].astype("Float64").to_numpy(dtype=float, na_value=np.nan)
    except (TypeError, ValueError, ArithmeticError) as exc:
        raise LearnopsError(f"reward column {reward!r} is not numeric: {exc}") from None
    keep = np.flatnonzero(np.isfinite(r))
    if keep.size == 0:
        raise LearnopsError(
            f"none of the {r.size} decision(s) has a {reward!r} outcome yet: nothing to evaluate"
        )
    return LoggedDecisions(
        X=X[keep],
        a=a[keep],
        r=r[keep],
        p_log=prop[keep],
        p_all=None if p_all is None else p_all[keep],
        groups=groups.astype(str).to_numpy()[keep],
        rows=keep,
        reward=reward,
        dropped_missing_reward=int(r.size - keep.size),
    )


@dataclass(frozen=True)
class PolicyValue:
    """IPS, SNIPS and DR of one target policy on logged decisions (learner-clustered errors),
    the logged policy's observed mean reward on the same rows, and the weights' diagnostics:
    Kish ESS, the largest weight and the mean weight (about 1 when the propensities are right
    and the logs cover the target; clearly below 1 means the target puts mass where the logging
    policy almost never acted, and IPS is then biased low)."""

    estimates: dict[str, OPEResult]
    observed: dict[str, float]
    n: int
    n_learners: int
    ess: float
    max_weight: float
    mean_weight: float
    reward: str
    reward_model: str
    dropped_missing_reward: int
    coverage_checked: bool

    def to_dict(self) -> dict[str, Any]:
        """``{"n", "n_learners", "estimates": {name: {"value", "se", "ci_low", "ci_high"}},
        "ess", "max_weight", "mean_weight", "observed_mean": {...}, "reward", "reward_model",
        "dropped_missing_reward", "coverage_checked"}``."""
        keys = ("value", "se", "ci_low", "ci_high")
        return {
            "n": self.n,
            "n_learners": self.n_learners,
            "estimates": {
                name: {k: getattr(res, k) for k in keys} for name, res in self.estimates.items()
            },
            "ess": self.ess,
            "max_weight": self.max_weight,
            "mean_weight": self.mean_weight,
            "observed_mean": dict(self.observed),
            "reward": self.reward,
            "reward_model": self.reward_model,
            "dropped_missing_reward": self.dropped_missing_reward,
            "coverage_checked": self.coverage_checked,
        }


def observed_mean(r: npt.ArrayLike, groups: npt.ArrayLike, alpha: float = 0.05) -> dict[str, float]:
    """The logged policy's mean reward with its learner-clustered SE and normal interval."""
    rr = np.asarray(r, dtype=float)
    mean = float(rr.mean())
    se = cluster_se(rr - mean, groups)
    z = float(stats.norm.ppf(1 - alpha / 2))
    return {"value": mean, "se": se, "ci_low": mean - z * se, "ci_high": mean + z * se}


def evaluate_policy(
    logged: LoggedDecisions,
    pi: npt.ArrayLike,
    *,
    seed: int = 0,
    kind: RewardKind = "gbm",
    n_folds: int = 5,
    alpha: float = 0.05,
) -> PolicyValue:
    """Off-policy value of the target policy ``pi`` ((n, K) probabilities for ``logged``'s rows)
    on ``logged``: coverage checked against the logging distribution when it was logged
    (:func:`check_coverage`), DR's reward model cross-fitted with folds grouped by learner
    (``kind``, ``n_folds``, ``seed``), every standard error clustered by learner."""
    pp = np.asarray(pi, dtype=float)
    if pp.shape != (logged.n, len(ACTIONS)):
        raise LearnopsError(f"target policy must be ({logged.n}, {len(ACTIONS)}), got {pp.shape}")
    if logged.p_all is not None:
        check_coverage(pp, logged.p_all)
    q_hat = cross_fit_rewards(
        logged.X, logged.a, logged.r, len(ACTIONS), n_folds, kind, seed, groups=logged.groups
    )
    est = off_policy_evaluation(
        logged.r, logged.p_log, pp, logged.a, q_hat=q_hat, alpha=alpha, groups=logged.groups
    )
    ips_res = est["ips"]
    w = pp[np.arange(logged.n), logged.a] / logged.p_log
    return PolicyValue(
        estimates=est,
        observed=observed_mean(logged.r, logged.groups, alpha),
        n=logged.n,
        n_learners=logged.n_learners,
        ess=ips_res.ess,
        max_weight=ips_res.max_weight,
        mean_weight=float(w.mean()),
        reward=logged.reward,
        reward_model=f"{kind}, {n_folds}-fold cross-fitted by learner",
        dropped_missing_reward=logged.dropped_missing_reward,
        coverage_checked=logged.p_all is not None,
    )
