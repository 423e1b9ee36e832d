"""Off-policy evaluation: the value of a target policy from decisions logged by another policy.

Notation: n logged rows, K actions. ``r`` the observed reward, ``a`` the logged action index,
``p_log`` the logging policy's probability of that action (the propensity), ``pi`` the (n, K)
target-policy probabilities, ``q_hat`` an optional (n, K) reward model. Importance weights are
w_i = pi[i, a_i] / p_log_i. Standard errors treat rows as independent; intervals are normal
approximations.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from scipy import stats
from sklearn.ensemble import GradientBoostingRegressor
from sklearn.linear_model import Ridge
from sklearn.model_selection import KFold

from learnops.errors import LearnopsError


@dataclass(frozen=True)
class OPEResult:
    """One off-policy estimate of a policy's mean reward."""

    estimator: str
    value: float
    se: float
    ci_low: float
    ci_high: float
    n: int
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


def _weights(pl: np.ndarray, pp: np.ndarray, aa: np.ndarray) -> np.ndarray:
    """pi[i, a_i] / p_log_i on already validated inputs."""
    return pp[np.arange(pl.size), aa] / pl


def effective_sample_size(w: npt.ArrayLike) -> float:
    """Kish effective sample size (Σw)² / Σw² of importance weights (0 when all are 0)."""
    ww = np.asarray(w, dtype=float)
    s2 = float(np.sum(ww**2))
    return float(np.sum(ww) ** 2 / s2) if s2 > 0 else 0.0


def _result(name: str, value: float, se: float, w: np.ndarray, alpha: float) -> OPEResult:
    z = float(stats.norm.ppf(1 - alpha / 2))
    return OPEResult(
        estimator=name,
        value=float(value),
        se=float(se),
        ci_low=float(value - z * se),
        ci_high=float(value + z * se),
        n=int(w.size),
        ess=effective_sample_size(w),
        max_weight=float(w.max()),
    )


def _mean_and_se(terms: np.ndarray) -> tuple[float, float]:
    n = terms.size
    se = float(terms.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan")
    return float(terms.mean()), se


def ips(
    r: npt.ArrayLike,
    p_log: npt.ArrayLike,
    pi: npt.ArrayLike,
    a: npt.ArrayLike,
    alpha: float = 0.05,
) -> OPEResult:
    """Inverse propensity scoring: mean of w_i·r_i (unbiased when propensities are correct)."""
    rr, pl, pp, aa = _inputs(r, p_log, pi, a)
    w = _weights(pl, pp, aa)
    value, se = _mean_and_se(w * rr)
    return _result("ips", value, se, w, alpha)


def snips(
    r: npt.ArrayLike,
    p_log: npt.ArrayLike,
    pi: npt.ArrayLike,
    a: npt.ArrayLike,
    alpha: float = 0.05,
) -> OPEResult:
    """Self-normalized IPS: Σ w_i·r_i / Σ w_i (biased but bounded by the reward range); SE by the
    delta method, sqrt(Σ w_i²(r_i − v)²) / Σ w_i."""
    rr, pl, pp, aa = _inputs(r, p_log, pi, a)
    w = _weights(pl, pp, aa)
    sw = float(w.sum())
    if sw <= 0:
        raise LearnopsError("the target policy gives probability 0 to every logged action")
    value = float(np.sum(w * rr) / sw)
    se = float(np.sqrt(np.sum(w**2 * (rr - value) ** 2)) / sw)
    return _result("snips", value, se, w, alpha)


def doubly_robust(
    r: npt.ArrayLike,
    p_log: npt.ArrayLike,
    pi: npt.ArrayLike,
    a: npt.ArrayLike,
    q_hat: npt.ArrayLike,
    alpha: float = 0.05,
) -> OPEResult:
    """Doubly robust: mean of Σ_k pi_ik·q̂_ik + w_i·(r_i − q̂_{i,a_i}); unbiased if either the
    propensities or the reward model are correct, and lower-variance than IPS when q̂ is good."""
    rr, pl, pp, aa = _inputs(r, p_log, pi, a)
    q = np.asarray(q_hat, dtype=float)
    if q.shape != pp.shape:
        raise LearnopsError(f"reward model must be {pp.shape}, got {q.shape}")
    if not np.all(np.isfinite(q)):
        raise LearnopsError("reward model predictions contain NaN or infinite values")
    rows = np.arange(rr.size)
    w = _weights(pl, pp, aa)
    terms = np.sum(pp * q, axis=1) + w * (rr - q[rows, aa])
    value, se = _mean_and_se(terms)
    return _result("dr", value, se, w, alpha)


def off_policy_evaluation(
    r: npt.ArrayLike,
    p_log: npt.ArrayLike,
    pi: npt.ArrayLike,
    a: npt.ArrayLike,
    q_hat: npt.ArrayLike | None = None,
    alpha: float = 0.05,
) -> dict[str, OPEResult]:
    """IPS, SNIPS and (when ``q_hat`` is given) DR estimates, keyed by estimator name."""
    out = {"ips": ips(r, p_log, pi, a, alpha), "snips": snips(r, p_log, pi, a, alpha)}
    if q_hat is not None:
        out["dr"] = doubly_robust(r, p_log, pi, a, q_hat, alpha)
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
    kind: Literal["ridge", "gbm"] = "ridge",
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
    kind: Literal["ridge", "gbm"] = "ridge",
    seed: int = 0,
) -> np.ndarray:
    """Out-of-fold (n, K) reward predictions: each row predicted by a model not fitted on it
    (avoids the small overfitting bias of using in-sample predictions in DR)."""
    xx = np.asarray(X, dtype=float)
    aa = np.asarray(a).astype(int)
    rr = np.asarray(r, dtype=float)
    if n_folds < 2:
        raise LearnopsError("n_folds must be at least 2")
    q = np.empty((xx.shape[0], n_actions))
    for train, test in KFold(n_folds, shuffle=True, random_state=seed).split(xx):
        model = fit_reward_model(xx[train], aa[train], rr[train], n_actions, kind=kind, seed=seed)
        q[test] = model.predict(xx[test])
    return q
