"""Why the decision model chose an action: integrated gradients of the chosen action's logit.

Integrated gradients (IG; Sundararajan et al. 2017) attribute ``f(x) - f(b)`` to the features:
``IG_j = (x_j - b_j) ∫₀¹ ∂f/∂x_j(b + α(x - b)) dα``. Here

* ``f`` is the network's **uncalibrated logit of the chosen action** (temperature scaling divides
  every logit by one T, so the signs and ranking are those of the calibrated logit; divide by T
  for its attributions);
* ``b``, the **baseline, is the training split's feature means**: the ``feature_stats.mean``
  saved in every model's ``metadata.json`` (the standardized input 0, "an average situation");
* the path runs in raw feature units, through the model's own standardization and ±clip, so an
  explanation's ``value`` is the feature as logged and its ``attribution`` is in logits: positive
  pushed the model towards the action, negative away from it.

Two engines compute the same integral:

* ``exact`` (the default, used by ``/decide?explain=true`` and ``learnops mlp explain``): the
  ReLU network with clipped inputs is piecewise linear along the straight path, so its gradient
  is constant between the points where an input hits its clip bound or a hidden unit changes
  sign. Those points are found layer by layer, and the integral is the sum over the segments of
  (segment length × gradient): exact up to float64 rounding, so the attributions sum to
  ``f(x) - f(b)`` (completeness) to ~1e-12, in well under a millisecond per decision.
* ``captum``: Captum's ``IntegratedGradients`` (a quadrature with ``n_steps`` points; its
  error shrinks like 1/n_steps at the network's kinks). The tests check that both agree.

Both run in float64 and are deterministic: the same model and input give the same attributions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from learnops.contracts import ACTIONS, FEATURES
from learnops.errors import LearnopsError
from learnops.mlp.features import feature_matrix, feature_vector
from learnops.mlp.inference import ID_COLUMNS
from learnops.mlp.model import MlpModel

__all__ = [
    "ATTR_PREFIX",
    "METHODS",
    "Explanation",
    "captum_attributions",
    "exact_attributions",
    "explain",
    "explain_batch",
]

#: Column prefix of the per-feature attributions in :func:`explain_batch`'s table.
ATTR_PREFIX = "attr_"
METHODS = ("exact", "captum")
#: Default number of explanation items ``Explanation.top`` returns (all 18 with None).
TOP_K = 5


@dataclass(frozen=True)
class Explanation:
    """Integrated-gradients attributions of one decision's chosen-action logit."""

    action: str
    """The action explained (the model's choice unless another was asked for)."""
    values: dict[str, float]
    """The decision's raw features."""
    attributions: dict[str, float]
    """Per feature (FEATURES order): its share of ``logit - baseline_logit``, in logits."""
    logit: float
    baseline_logit: float

    @property
    def delta(self) -> float:
        """Completeness gap: sum of attributions − (logit − baseline_logit)."""
        return float(sum(self.attributions.values()) - (self.logit - self.baseline_logit))

    def top(self, k: int | None = TOP_K) -> list[dict[str, Any]]:
        """The ``k`` features with the largest |attribution| (all with None), largest first:
        ``[{"feature", "value", "attribution"}]``."""
        order = sorted(FEATURES, key=lambda f: (-abs(self.attributions[f]), FEATURES.index(f)))
        return [
            {"feature": f, "value": self.values[f], "attribution": self.attributions[f]}
            for f in order[: len(order) if k is None else k]
        ]


def _layers(model: MlpModel) -> tuple[list[tuple[np.ndarray, np.ndarray]], np.ndarray, np.ndarray]:
    """Hidden layers (Wᵀ, b), and the action head's Wᵀ and b, in float64 (the numpy fast path's
    cached weights: the logits are those ``predict`` computes)."""
    layers = model._np_layers
    if layers is None:  # pragma: no cover - set in MlpModel.__post_init__
        model.refresh()
        layers = model._np_layers
    assert layers is not None  # nosec B101 (type narrowing)
    w, b = layers[-1]
    k = len(model.actions)
    return layers[:-1], w[:, :k], b[:k]


def _forward(hidden: list[tuple[np.ndarray, np.ndarray]], z: np.ndarray, upto: int) -> np.ndarray:
    h = z
    for w, b in hidden[:upto]:
        h = np.maximum(h @ w + b, 0.0)
    return h


def _exact_row(
    hidden: list[tuple[np.ndarray, np.ndarray]],
    w_out: np.ndarray,
    u: np.ndarray,
    clip: float,
    target: int,
) -> np.ndarray:
    """Exact IG in standardized units for one row: the path z(α) = clip(α·u), α ∈ [0, 1]."""
    big = np.abs(u) > clip
    bp = np.unique(np.concatenate([[0.0, 1.0], clip / np.abs(u[big])]))
    for li, (w, b) in enumerate(hidden):
        a = _forward(hidden, np.clip(bp[:, None] * u, -clip, clip), li) @ w + b
        lo, hi = a[:-1], a[1:]
        k, j = np.nonzero(lo * hi < 0)  # a unit changes sign inside segment k
        if len(k):
            cross = bp[k] + (bp[k + 1] - bp[k]) * lo[k, j] / (lo[k, j] - hi[k, j])
            bp = np.unique(np.concatenate([bp, cross]))
    mid = 0.5 * (bp[:-1] + bp[1:])
    zs = np.clip(mid[:, None] * u, -clip, clip)
    acts = [zs]
    for w, b in hidden:
        acts.append(np.maximum(acts[-1] @ w + b, 0.0))
    g = np.repeat(w_out[:, target][None, :], len(mid), axis=0)
    for li in range(len(hidden) - 1, -1, -1):
        g = (g * (acts[li + 1] > 0)) @ hidden[li][0].T
    g *= np.abs(mid[:, None] * u) < clip  # a clipped input has no gradient
    return (np.diff(bp) @ g) * u


def _logits(model: MlpModel, X: np.ndarray) -> np.ndarray:
    hidden, w_out, b_out = _layers(model)
    Z = np.clip((X - model.stats.mean) / model.stats.std, -model.stats.clip, model.stats.clip)
    return _forward(hidden, Z, len(hidden)) @ w_out + b_out


def _targets(model: MlpModel, logits: np.ndarray, target: Any) -> np.ndarray:
    if target is None:
        return logits.argmax(axis=1)
    t = np.broadcast_to(np.asarray(target), (len(logits),))
    if t.dtype.kind in "OUS":
        bad = sorted({str(a) for a in t} - set(model.actions))
        if bad:
            raise LearnopsError(f"unknown action(s) {bad}; expected one of {list(model.actions)}")
        t = np.array([model.actions.index(str(a)) for a in t])
    return t.astype(np.int64)


def exact_attributions(
    model: MlpModel, X: np.ndarray, target: Any = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(attributions n × 18 in logits, target index, logit, baseline logit) of raw features
    ``X`` by exact integrated gradients; ``target`` (indices or action names, one or per row)
    defaults to the model's choice."""
    X = np.atleast_2d(np.asarray(X, dtype=np.float64))
    hidden, w_out, _ = _layers(model)
    logits = _logits(model, X)
    base = _logits(model, model.stats.mean[None, :])[0]
    t = _targets(model, logits, target)
    U = (X - model.stats.mean) / model.stats.std
    attr = np.empty_like(X)
    for i in range(len(X)):
        # chain rule dz/dx = 1/std and dx = (x - mean) = u·std: IG in raw units equals IG in z
        attr[i] = _exact_row(hidden, w_out, U[i], model.stats.clip, int(t[i]))
    rows = np.arange(len(X))
    return attr, t, logits[rows, t], base[t]


def captum_attributions(
    model: MlpModel, X: np.ndarray, target: Any = None, n_steps: int = 256
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The same as :func:`exact_attributions`, by Captum's ``IntegratedGradients``
    (Gauss-Legendre quadrature with ``n_steps`` points on the float64 network)."""
    import torch
    from captum.attr import IntegratedGradients
    from torch import nn

    X = np.atleast_2d(np.asarray(X, dtype=np.float64))
    logits = _logits(model, X)
    base = _logits(model, model.stats.mean[None, :])[0]
    t = _targets(model, logits, target)
    hidden, w_out, b_out = _layers(model)
    stats = model.stats

    class RawLogits(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = ((x - torch.from_numpy(stats.mean)) / torch.from_numpy(stats.std)).clamp(
                -stats.clip, stats.clip
            )
            for w, b in hidden:
                h = torch.relu(h @ torch.from_numpy(w) + torch.from_numpy(b))
            return h @ torch.from_numpy(w_out) + torch.from_numpy(b_out)

    ig = IntegratedGradients(RawLogits())
    attr = ig.attribute(
        torch.from_numpy(X.copy()),
        baselines=torch.from_numpy(np.repeat(stats.mean[None, :], len(X), axis=0)),
        target=torch.from_numpy(t),
        n_steps=int(n_steps),
        method="gausslegendre",
    )
    rows = np.arange(len(X))
    return attr.detach().numpy(), t, logits[rows, t], base[t]


def _attribute(model: MlpModel, X: np.ndarray, target: Any, method: str) -> Any:
    if method == "exact":
        return exact_attributions(model, X, target)
    if method == "captum":
        return captum_attributions(model, X, target)
    raise LearnopsError(f"unknown attribution method {method!r}; expected one of {METHODS}")


def explain(
    model: MlpModel,
    features: Mapping[str, Any],
    action: str | None = None,
    method: str = "exact",
) -> Explanation:
    """Integrated-gradients explanation of one decision (a mapping of the 18 features) for
    ``action`` (default: the model's choice); see the module docstring."""
    x = feature_vector(features)
    attr, t, fx, fb = _attribute(model, x[None, :], action, method)
    return Explanation(
        action=model.actions[int(t[0])],
        values=dict(zip(FEATURES, (float(v) for v in x), strict=True)),
        attributions=dict(zip(FEATURES, (float(v) for v in attr[0]), strict=True)),
        logit=float(fx[0]),
        baseline_logit=float(fb[0]),
    )


def explain_batch(model: MlpModel, df: pd.DataFrame, method: str = "exact") -> pd.DataFrame:
    """One row per decision: id columns (when present), the model's ``action``, its ``logit``,
    ``baseline_logit``, ``delta`` (completeness gap), and ``attr_<feature>`` for the 18
    features (logits). The index of ``df`` is kept."""
    X = feature_matrix(df)
    if len(X):
        attr, t, fx, fb = _attribute(model, X, None, method)
    else:
        attr, t, fx, fb = (np.empty((0, len(FEATURES))), np.empty(0, int), np.empty(0), np.empty(0))
    out = pd.DataFrame(index=df.index)
    for c in ID_COLUMNS:
        if c in df.columns:
            out[c] = df[c].to_numpy()
    out["action"] = np.asarray(ACTIONS, dtype=object)[t]
    out["logit"] = fx
    out["baseline_logit"] = fb
    out["delta"] = attr.sum(axis=1) - (fx - fb)
    for j, f in enumerate(FEATURES):
        out[ATTR_PREFIX + f] = attr[:, j]
    return out
