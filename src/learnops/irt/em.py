"""The EM loop (Bock–Aitkin MML): start values, SQUAREM acceleration, convergence, final pass.

Each iteration is an E-step (``estep.EStep``) followed by an M-step (``mstep.mstep``); pairs of EM
steps are extrapolated by SQUAREM when that improves the objective. Large problems iterate with
float32 E-steps until convergence, then polish with float64 EM steps until the same rule holds
in float64. The last E-step also yields the EAP abilities and, for ``louis-block`` standard
errors, the Louis accumulation; ``louis-exact`` runs one more E-step at the estimate that
accumulates the per-learner Louis information and the abilities (``se``).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from learnops.irt.estep import quadrature
from learnops.irt.mstep import log_prior_total, mstep
from learnops.irt.parallel import ShardedEStep
from learnops.irt.params import Params, Priors, clip, pack, param_change, unpack
from learnops.irt.se import (
    LouisAccumulator,
    choose_method,
    exact_cov,
    louis_block_cov,
    louis_exact_cov,
    louis_exact_flops,
)

if TYPE_CHECKING:
    from learnops.irt.data import Encoded
    from learnops.irt.parallel import DaskEngine, LocalEngine

#: SQUAREM step length bound (alpha is kept in [-50, -1]).
ALPHA_MIN = -50.0


@dataclass
class EMResult:
    """Estimates, fit statistics, EAP abilities (learners × [eap, sd]) and item covariances."""

    params: Params
    loglik: float
    objective: float
    iterations: int
    converged: bool
    abilities: np.ndarray
    cov_blocks: np.ndarray | None = None  # (I, k, k) covariance of (a, d[, g]) per item
    se_method: str = "none"
    warnings: list[str] = field(default_factory=list)


@dataclass
class _Point:
    """Parameters with the E-step results at them: loglik, log posterior, expected counts."""

    p: Params
    loglik: float
    objective: float
    r: np.ndarray
    w: np.ndarray


@dataclass
class _EMState:
    """What every E-step of the loop needs; ``final_*`` keep the last polishing pass."""

    es: ShardedEStep
    priors: Priors
    model: str
    se_method: str
    fast: bool
    polishing: bool = False
    final_p: Params | None = None
    final_pre: tuple[np.ndarray | None, np.ndarray] | None = None


def initial_params(enc: Encoded, model: str) -> Params:
    """Start values from item proportions correct (a = 1, c = 0.2 for the 3PL)."""
    n = enc.item_counts.astype(float)
    k = enc.item_correct
    return start_values(n, k, model)


def start_values(n: np.ndarray, k: np.ndarray, model: str) -> Params:
    """Start values from the answers ``n`` and correct answers ``k`` per item (the sums a
    partitioned dataset's workers return; ``initial_params`` counts them from the table)."""
    n_items = len(n)
    prop = np.clip((k + 0.5) / (n + 1.0), 0.02, 0.98)
    a = np.ones(n_items)
    if model == "3pl":
        c = 0.2
        adj = np.clip((prop - c) / (1 - c), 0.02, 0.98)
        return Params(a, np.log(adj / (1 - adj)) * 1.7, np.full(n_items, np.log(c / (1 - c))))
    return Params(a, np.log(prop / (1 - prop)) * 1.7)


def run_em(
    enc: Encoded,
    model: str,
    *,
    priors: Priors,
    quad_points: int = 61,
    quad_range: float = 6.0,
    max_iter: int = 500,
    tol: float = 1e-6,
    se: str = "auto",
    progress: bool = False,
    chunk_cells: int = 1 << 21,
    accelerate: bool = True,
    backend: str = "auto",
    engine: LocalEngine | DaskEngine | None = None,
    n_shards: int | None = None,
) -> EMResult:
    """Fit by EM (SQUAREM-accelerated), then EAP abilities and item standard errors.

    ``se`` is ``auto``, ``exact``, ``louis-exact``, ``louis-block`` or ``none`` (see
    ``learnops.irt.se``). The E-steps run over learner shards on ``engine`` (default: threads
    on all cores, ``learnops.irt.parallel``); the result does not depend on it.
    """
    theta, logw = quadrature(quad_points, quad_range)
    es = ShardedEStep(enc, theta, logw, chunk_cells, backend, engine, n_shards)
    flops = louis_exact_flops(model, enc.learner_counts, enc.n_items, len(theta))
    return run_em_on(
        es,
        model,
        initial_params(enc, model),
        flops,
        enc.n_responses,
        priors=priors,
        max_iter=max_iter,
        tol=tol,
        se=se,
        progress=progress,
        accelerate=accelerate,
    )


def run_em_on(
    es: ShardedEStep,
    model: str,
    start: Params,
    flops: float,
    n_responses: int,
    *,
    priors: Priors,
    max_iter: int = 500,
    tol: float = 1e-6,
    se: str = "auto",
    progress: bool = False,
    accelerate: bool = True,
) -> EMResult:
    """``run_em`` on learner shards already built (``es``: a ``ShardedEStep``, or the
    partitioned dataset's ``learnops.irt.partitioned.PartitionedEStep``), from ``start``
    values; ``flops`` (``louis_exact_flops``) and ``n_responses`` choose the ``se`` method."""
    se_method = choose_method(se, model, es.n_items, n_responses, flops)
    st = _EMState(es, priors, model, se_method, fast=es.fast_ok)
    start = clip(start, priors)
    cur, it, converged = _iterate(st, start, max_iter, tol, accelerate, progress)
    warnings = [] if converged else [f"EM did not converge in {max_iter} iterations"]
    return _final_pass(st, cur, it, converged, warnings)


def _evaluate(st: _EMState, p: Params) -> _Point:
    """E-step at ``p``. While polishing, each E-step may be the last one: it also computes the
    abilities and the Louis accumulation, kept in ``st.final_*`` for the point it was run at
    (not with ``louis-exact``, whose own pass at the final point makes them)."""
    if st.polishing:
        acc = (
            LouisAccumulator(p, st.es.theta, st.es.n_items)
            if st.se_method == "louis-block"
            else None
        )
        ll, r, w, ab = st.es.run(p, abilities=st.se_method != "louis-exact", callback=acc)
        st.final_p, st.final_pre = p, (None if acc is None else acc.b_mat, ab)
    else:
        ll, r, w, _ = st.es.run(p, fast=st.fast)
    return _Point(p, ll, ll + log_prior_total(p, st.priors, st.model), r, w)


def _em_map(st: _EMState, pt: _Point) -> Params:
    """One M-step from the expected counts at ``pt`` (item blocks on the local engine's
    threads; on the Dask driver, one after the other)."""
    return mstep(pt.p, pt.r, pt.w, st.es.theta, st.priors, st.model, map_fn=st.es.engine.map_local)


def _iterate(
    st: _EMState, start: Params, max_iter: int, tol: float, accelerate: bool, progress: bool
) -> tuple[_Point, int, bool]:
    """EM iterations from ``start``: the final point, the iteration count, converged or not.

    Stops when the relative change of the objective is below ``tol`` and the largest parameter
    change below sqrt(tol)/10 (1e-4 at the default tol = 1e-6, mirt's default stopping rule).
    Float32 iterations that meet it switch to float64 polishing until it holds again.
    """
    from tqdm import tqdm

    bar = tqdm(
        total=max_iter,
        desc=f"EM {st.model}",
        disable=None if progress else True,
        file=sys.stderr,
        leave=False,
    )
    cur = _evaluate(st, start)
    converged = False
    it = 0
    param_tol = np.sqrt(tol) * 0.1
    while it < max_iter:
        new, it = _em_step(st, cur, it, max_iter, accelerate)
        dpar = param_change(cur.p, new.p)
        dobj = new.objective - cur.objective
        cur = new
        bar.update(it - bar.n)
        bar.set_postfix(loglik=f"{cur.loglik:.4f}")
        if abs(dobj) <= tol * max(1.0, abs(cur.objective)) and dpar < param_tol:
            if not st.fast:
                converged = True
                break
            st.fast = False
            cur = _evaluate(st, cur.p)
            st.polishing = True
    bar.close()
    if st.fast:  # out of iterations in float32: report float64 values
        st.fast = False
        cur = _evaluate(st, cur.p)
    return cur, it, converged


def _em_step(
    st: _EMState, cur: _Point, it: int, max_iter: int, accelerate: bool
) -> tuple[_Point, int]:
    """One EM step, or (when accelerating, not polishing) two EM steps and a SQUAREM
    extrapolation; returns the new point and the updated iteration count."""
    v0 = pack(cur.p, st.model)
    pt1 = _evaluate(st, _em_map(st, cur))
    it += 1
    if not (accelerate and not st.polishing and it + 1 < max_iter):
        return pt1, it
    p2 = _em_map(st, pt1)
    it += 1
    return _squarem(st, v0, pt1, p2), it


def _squarem(st: _EMState, v0: np.ndarray, pt1: _Point, p2: Params) -> _Point:
    """SQUAREM extrapolation of v0 → p1 → p2, kept when it improves on p1; else p2.

    p2 is evaluated only when the extrapolation is rejected (one E-step less per accepted one).
    """
    v1, v2 = pack(pt1.p, st.model), pack(p2, st.model)
    rr, vv = v1 - v0, v2 - 2 * v1 + v0
    nv = np.linalg.norm(vv)
    if nv > 0:
        alpha = -np.linalg.norm(rr) / nv
        if alpha < -1.0:
            alpha = max(alpha, ALPHA_MIN)
            vx = v0 - 2 * alpha * rr + alpha**2 * vv
            ptx = _evaluate(st, clip(unpack(vx, st.model, len(pt1.p.a)), st.priors))
            if np.isfinite(ptx.objective) and ptx.objective > pt1.objective:
                return ptx
    return _evaluate(st, p2)


def _final_pass(
    st: _EMState, cur: _Point, it: int, converged: bool, warnings: list[str]
) -> EMResult:
    """EAP abilities and item covariances at the final point (reusing the last polishing pass
    when it was run there)."""
    p, es = cur.p, st.es
    result = EMResult(
        p, cur.loglik, cur.objective, it, converged, np.empty((0, 2)), warnings=warnings
    )
    pre = st.final_pre if st.final_p is p else None
    if st.se_method == "louis-block":  # abilities come from the same E-step pass
        result.cov_blocks, result.abilities = louis_block_cov(
            p, es, cur.r, cur.w, st.priors, st.model, pre=pre
        )
    elif st.se_method == "louis-exact":  # abilities come from the same E-step pass
        result.cov_blocks, result.abilities = louis_exact_cov(
            p, es, cur.r, cur.w, st.priors, st.model, warnings
        )
    else:
        result.abilities = pre[1] if pre is not None else es.run(p, abilities=True)[3]
        if st.se_method == "exact":
            result.cov_blocks = exact_cov(p, es, st.priors, st.model, warnings)
    result.se_method = st.se_method
    return result
