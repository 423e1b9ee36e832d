"""Item parameterization shared by the E-step, M-step, standard errors and scoring.

Internal parameterization per item: slope ``a``, intercept ``d`` and, for the 3PL, the logit ``g``
of the guessing parameter: P(correct | θ) = c + (1 − c) σ(aθ + d), c = σ(g), difficulty b = −d/a.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import expit, log_expit

# Parameter bounds keep separated items (all correct / all wrong) finite.
A_MIN_POSITIVE = 1e-2
A_MAX = 20.0
D_MAX = 40.0
G_MIN, G_MAX = -15.0, 5.0


@dataclass(frozen=True)
class Priors:
    """Prior hyper-parameters: lognormal(a), normal(b), beta(c); None disables one."""

    a: tuple[float, float] | None = None
    b: tuple[float, float] | None = None
    c: tuple[float, float] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: (list(v) if v is not None else None) for k, v in vars(self).items()}


@dataclass
class Params:
    """Item parameters in the internal (a, d, g) form; g is None for 1PL/2PL."""

    a: np.ndarray
    d: np.ndarray
    g: np.ndarray | None = None

    def copy(self) -> Params:
        return Params(self.a.copy(), self.d.copy(), None if self.g is None else self.g.copy())

    @property
    def c(self) -> np.ndarray:
        return np.zeros_like(self.a) if self.g is None else expit(self.g)

    @property
    def b(self) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return -self.d / self.a


def item_logprobs(p: Params, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """log P and log(1 − P) per item and node (items × nodes)."""
    z = np.multiply.outer(p.a, theta) + p.d[:, None]
    # log σ(±z) = min(±z, 0) − log(1 + e^−|z|): one exp and one log1p for both tables
    t = np.log1p(np.exp(-np.abs(z)))
    lz = np.minimum(z, 0.0)
    lz -= t
    np.negative(z, out=z)
    lmz = np.minimum(z, 0.0, out=z)
    lmz -= t
    if p.g is None:
        return lz, lmz
    logc = log_expit(p.g)[:, None]
    log1mc = log_expit(-p.g)[:, None]
    return np.logaddexp(logc, log1mc + lz), log1mc + lmz


def clip(p: Params, pri: Priors) -> Params:
    """Parameters within the bounds (a > 0 when a prior on a is set, else |a| ≥ 1e-4)."""
    a_min = A_MIN_POSITIVE if pri.a is not None else -A_MAX
    a = np.clip(p.a, a_min, A_MAX)
    if pri.a is None:  # keep |a| away from 0 so that b = −d/a stays finite
        tiny = np.abs(a) < 1e-4
        a[tiny] = np.where(a[tiny] < 0, -1e-4, 1e-4)
    g = None if p.g is None else np.clip(p.g, G_MIN, G_MAX)
    return Params(a, np.clip(p.d, -D_MAX, D_MAX), g)


def add_step(p: Params, step: np.ndarray, t: np.ndarray) -> Params:
    """p + t·step per item; ``step`` is (items, k) in (a, d[, g]) order, ``t`` per item."""
    st = step * t[:, None]
    g = None if p.g is None else p.g + st[:, 2]
    return Params(p.a + st[:, 0], p.d + st[:, 1], g)


def column(p: Params, j: int) -> np.ndarray:
    """The j-th parameter vector in (a, d, g) order."""
    return [p.a, p.d, p.g][j]


def pack(p: Params, model: str) -> np.ndarray:
    """Free parameters as one vector: (a_1, d) for the 1PL, else (a, d[, g])."""
    if model == "1pl":
        return np.concatenate([p.a[:1], p.d])
    parts = [p.a, p.d] + ([] if p.g is None else [p.g])
    return np.concatenate(parts)


def unpack(v: np.ndarray, model: str, n_items: int) -> Params:
    """Inverse of ``pack``."""
    if model == "1pl":
        return Params(np.full(n_items, v[0]), v[1:].copy())
    a, d = v[:n_items].copy(), v[n_items : 2 * n_items].copy()
    g = v[2 * n_items :].copy() if model == "3pl" else None
    return Params(a, d, g)


def param_change(p: Params, q: Params) -> float:
    """Largest absolute change of a, d or c between two parameter sets."""
    dc = 0.0 if p.g is None else float(np.abs(p.c - q.c).max())
    return max(float(np.abs(p.a - q.a).max()), float(np.abs(p.d - q.d).max()), dc)
