"""M-step: per-item maximization of the expected complete-data log posterior, and the priors.

Given the E-step's expected counts r (correct) and w (wrong) per item and quadrature node, each
item's (a, d[, g]) is updated by Fisher scoring with step halving; the 1PL's common slope is
updated jointly with all intercepts through a Schur complement.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from scipy.special import expit, log_expit

from learnops.irt.params import Params, Priors, add_step, clip, item_logprobs

#: Largest change of any parameter in one Fisher-scoring step.
MAX_STEP = 1.0


def _prior_terms(
    p: Params, pri: Priors, include_a: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Log prior, its gradient and a positive curvature approximation per item."""
    n, k = len(p.a), 2 if p.g is None else 3
    val, grad, info = np.zeros(n), np.zeros((n, k)), np.zeros((n, k, k))
    if pri.a is not None and include_a:
        val_a, grad_a, info_a = _prior_a(p.a, pri.a)
        val += val_a
        grad[:, 0] += grad_a
        info[:, 0, 0] += info_a
    if pri.b is not None:
        mu, sd = pri.b
        b = -p.d / p.a
        e = b - mu
        val += -(e**2) / (2 * sd**2)
        grad[:, 0] += e * b / (sd**2 * p.a)
        grad[:, 1] += e / (sd**2 * p.a)
        jac = np.stack([-b / p.a, -1.0 / p.a], axis=1)
        info[:, :2, :2] += jac[:, :, None] * jac[:, None, :] / sd**2
    if pri.c is not None and p.g is not None:
        al, be = pri.c
        c = expit(p.g)
        val += (al - 1) * log_expit(p.g) + (be - 1) * log_expit(-p.g)
        grad[:, 2] += (al - 1) * (1 - c) - (be - 1) * c
        info[:, 2, 2] += max(al + be - 2, 0.0) * c * (1 - c)
    return val, grad, info


def _prior_a(a: np.ndarray, prior: tuple[float, float]) -> tuple[Any, Any, Any]:
    mu, sd = prior
    la = np.log(a)
    u = la - mu
    return -la - u**2 / (2 * sd**2), -(1 + u / sd**2) / a, 1.0 / (sd**2 * a**2)


def item_terms(
    p: Params,
    r: np.ndarray,
    w: np.ndarray,
    theta: np.ndarray,
    pri: Priors,
    *,
    include_a_prior: bool = True,
    need: str = "all",
    logprobs: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Per item: expected complete-data log posterior, its gradient and Fisher information
    (``logprobs``: ``item_logprobs(p, theta)`` if already computed)."""
    lp, l1p = logprobs if logprobs is not None else item_logprobs(p, theta)
    obj = np.einsum("iq,iq->i", r, lp) + np.einsum("iq,iq->i", w, l1p)
    pv, pg, pinfo = _prior_terms(p, pri, include_a_prior)
    obj = obj + pv
    if need == "obj":
        return obj, None, None
    z = np.multiply.outer(p.a, theta) + p.d[:, None]
    s = expit(z)
    n = r + w
    k = 2 if p.g is None else 3
    grad = np.empty((len(p.a), k))
    info = np.empty((len(p.a), k, k))
    if p.g is None:
        gz = r - n * s
        izz = n * s * (1 - s)
    else:
        c = expit(p.g)[:, None]
        prob = np.exp(lp)
        resid = r - n * prob
        gz = resid * s / prob
        gg = resid * c / prob
        izz = n * (1 - c) * s * s * (1 - s) / prob
        izg = n * (1 - c) * s * (1 - s) * c / prob
        igg = n * (1 - s) * c * c * (1 - c) / prob
        grad[:, 2] = gg.sum(1)
        info[:, 0, 2] = info[:, 2, 0] = izg @ theta
        info[:, 1, 2] = info[:, 2, 1] = izg.sum(1)
        info[:, 2, 2] = igg.sum(1)
    grad[:, 0] = gz @ theta
    grad[:, 1] = gz.sum(1)
    info[:, 0, 0] = izz @ (theta**2)
    info[:, 0, 1] = info[:, 1, 0] = izz @ theta
    info[:, 1, 1] = izz.sum(1)
    return obj, grad + pg, info + pinfo


#: Items per block of the M-step (about: the blocks are equal); fixed by the number of items,
#: never by the number of workers, so the result does not depend on them.
BLOCK_ITEMS = 1000

#: ``map_fn(fn, items)``: ``[fn(x) for x in items]``, possibly on several threads.
MapFn = Callable[[Callable[[Any], Any], list[Any]], list[Any]]


def mstep(
    p: Params,
    r: np.ndarray,
    w: np.ndarray,
    theta: np.ndarray,
    pri: Priors,
    model: str,
    max_inner: int = 25,
    tol: float = 1e-10,
    *,
    map_fn: MapFn | None = None,
) -> Params:
    """Maximize the expected complete-data log posterior per item (Fisher scoring + halving).

    Each item (1PL aside) takes Fisher-scoring steps until its own a and d move less than
    ``tol`` (at most ``max_inner`` steps). The items are solved in blocks (``item_blocks``,
    through ``map_fn``: e.g. on threads); the blocks depend only on the number of items, so
    the result is the same to the bit however the blocks are run."""
    if model == "1pl":
        return _mstep_1pl(p, r, w, theta, pri, max_inner, tol)
    parts = [_ItemBlock(_take(p, sl), r[sl], w[sl], theta, pri) for sl in item_blocks(len(p.a))]
    run = map_fn if map_fn is not None and len(parts) > 1 else serial_map
    solved = run(lambda b: b.solve(max_inner, tol), parts)
    if len(solved) == 1:
        return solved[0]
    gs = [b.g for b in solved]
    return Params(
        np.concatenate([b.a for b in solved]),
        np.concatenate([b.d for b in solved]),
        None if gs[0] is None else np.concatenate(gs),
    )


def item_blocks(n_items: int) -> list[slice]:
    """Consecutive item ranges of about ``BLOCK_ITEMS`` items (sizes differing by one at
    most; one range for fewer than 2·``BLOCK_ITEMS`` items)."""
    blocks = max(1, n_items // BLOCK_ITEMS)
    ends = [n_items * (i + 1) // blocks for i in range(blocks)]
    return [slice(lo, hi) for lo, hi in zip([0, *ends[:-1]], ends, strict=True)]


def serial_map(fn: Callable[[Any], Any], items: list[Any]) -> list[Any]:
    """``[fn(x) for x in items]``: a ``MapFn`` on the calling thread."""
    return [fn(x) for x in items]


def _take(p: Params, sel: Any) -> Params:
    return Params(p.a[sel], p.d[sel], None if p.g is None else p.g[sel])


class _ItemBlock:
    """Fisher scoring with step halving on a block of items (their counts ``r``, ``w``)."""

    def __init__(
        self, p: Params, r: np.ndarray, w: np.ndarray, theta: np.ndarray, pri: Priors
    ) -> None:
        self.p, self.r, self.w, self.theta, self.pri = p, r, w, theta, pri
        k = 2 if p.g is None else 3
        self.ridge = 1e-9 * np.eye(k)

    def solve(self, max_inner: int, tol: float) -> Params:
        """Steps until every item's a and d move less than ``tol`` (or ``max_inner`` steps);
        an item that has stopped is not computed again."""
        out = self.p.copy()
        active = np.arange(len(out.a))
        cur, r, w = self.p, self.r, self.w
        logprobs = None  # item_logprobs(cur), when known
        for _ in range(max_inner):
            if not len(active):
                break
            cand, logprobs = self._step(cur, r, w, logprobs)
            out.a[active], out.d[active] = cand.a, cand.d
            if out.g is not None:
                out.g[active] = cand.g
            moving = np.maximum(np.abs(cand.a - cur.a), np.abs(cand.d - cur.d)) >= tol
            if moving.all():
                cur = cand
                continue
            active, cur, r, w = active[moving], _take(cand, moving), r[moving], w[moving]
            if logprobs is not None:
                logprobs = (logprobs[0][moving], logprobs[1][moving])
        return out

    def _step(
        self,
        p: Params,
        r: np.ndarray,
        w: np.ndarray,
        logprobs: tuple[np.ndarray, np.ndarray] | None,
    ) -> tuple[Params, tuple[np.ndarray, np.ndarray] | None]:
        """One Fisher-scoring step, halved per item until the objective does not decrease
        (items with no ascent keep their values); the new values and their log-probabilities
        (None if unknown)."""
        theta, pri = self.theta, self.pri
        obj, grad, info = item_terms(p, r, w, theta, pri, logprobs=logprobs)
        step = np.linalg.solve(info + self.ridge, grad[:, :, None])[:, :, 0]
        big = np.abs(step).max(axis=1)
        step *= np.minimum(1.0, MAX_STEP / np.maximum(big, 1e-300))[:, None]
        t = np.ones(len(p.a))
        for _ in range(40):
            cand = clip(add_step(p, step, t), pri)
            logprobs = item_logprobs(cand, theta)
            new_obj, _, _ = item_terms(cand, r, w, theta, pri, need="obj", logprobs=logprobs)
            bad = new_obj < obj - 1e-12 * np.abs(obj)
            if not bad.any():
                return cand, logprobs
            t[bad] *= 0.5
        # no ascent possible for these items: keep them
        cand.a[bad], cand.d[bad] = p.a[bad], p.d[bad]
        if cand.g is not None:
            cand.g[bad] = p.g[bad]
        return cand, None


def _total_1pl(
    a_val: float,
    d_val: np.ndarray,
    r: np.ndarray,
    w: np.ndarray,
    theta: np.ndarray,
    pri: Priors,
    need: str = "all",
) -> tuple[Any, np.ndarray | None, np.ndarray | None, Any, Any]:
    """1PL objective summed over items (a prior counted once), per-item gradient and
    information, and the a prior's gradient and curvature."""
    pp = Params(np.full(len(d_val), a_val), d_val)
    obj, grad, info = item_terms(pp, r, w, theta, pri, include_a_prior=False, need=need)
    tot = obj.sum()
    if pri.a is not None:
        va, ga, ia = _prior_a(np.array([a_val]), pri.a)
        tot += va[0]
        if grad is not None:
            return tot, grad, info, ga[0], ia[0]
    return tot, grad, info, 0.0, 0.0


def _mstep_1pl(
    p: Params,
    r: np.ndarray,
    w: np.ndarray,
    theta: np.ndarray,
    pri: Priors,
    max_inner: int,
    tol: float,
) -> Params:
    """1PL M-step: the common slope and all intercepts by Fisher scoring (Schur complement)."""
    a = float(p.a[0])
    d = p.d.copy()
    n_items = len(d)

    for _ in range(max_inner):
        obj, grad, info, ga_pri, ia_pri = _total_1pl(a, d, r, w, theta, pri)
        ga = grad[:, 0].sum() + ga_pri
        jaa = info[:, 0, 0].sum() + ia_pri
        jad, jdd, gd = info[:, 0, 1], info[:, 1, 1] + 1e-9, grad[:, 1]
        schur = jaa - (jad**2 / jdd).sum() + 1e-9
        da = (ga - (jad * gd / jdd).sum()) / schur
        dd = (gd - jad * da) / jdd
        big = max(abs(da), np.abs(dd).max())
        scale = min(1.0, MAX_STEP / max(big, 1e-300))
        t = scale
        for _ in range(40):
            cand = clip(Params(np.full(n_items, a + t * da), d + t * dd), pri)
            new_obj = _total_1pl(float(cand.a[0]), cand.d, r, w, theta, pri, need="obj")[0]
            if new_obj >= obj - 1e-12 * abs(obj):
                break
            t *= 0.5
        else:
            break
        moved = max(abs(cand.a[0] - a), np.abs(cand.d - d).max())
        a, d = float(cand.a[0]), cand.d
        if moved < tol:
            break
    return Params(np.full(n_items, a), d)


def log_prior_total(p: Params, pri: Priors, model: str) -> float:
    """Sum of log prior densities (the a prior counted once for the 1PL common slope)."""
    val, _, _ = _prior_terms(p, pri, include_a=model != "1pl")
    tot = float(val.sum())
    if model == "1pl" and pri.a is not None:
        tot += float(_prior_a(p.a[:1], pri.a)[0][0])
    return tot


def full_gradient(
    p: Params, r: np.ndarray, w: np.ndarray, theta: np.ndarray, pri: Priors, model: str
) -> np.ndarray:
    """Gradient of the marginal log posterior (Fisher identity), packed like ``pack``."""
    _, grad, _ = item_terms(p, r, w, theta, pri, include_a_prior=model != "1pl")
    if model == "1pl":
        ga = grad[:, 0].sum()
        if pri.a is not None:
            ga += _prior_a(p.a[:1], pri.a)[1][0]
        return np.concatenate([[ga], grad[:, 1]])
    return np.concatenate([grad[:, j] for j in range(grad.shape[1])])
