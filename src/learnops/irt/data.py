"""Response-table validation and encoding, and the held-out metrics of P(correct)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from learnops.data.splits import learner_column
from learnops.errors import LearnopsError

__all__ = [
    "Encoded",
    "binary_correct",
    "data_warnings",
    "encode",
    "evaluate_predictions",
    "learner_column",
]


@dataclass
class Encoded:
    """Responses coded as integer learner/item indices (sorted unique ids)."""

    learner_ids: np.ndarray
    item_ids: np.ndarray
    learner: np.ndarray
    item: np.ndarray
    y: np.ndarray

    @property
    def n_learners(self) -> int:
        return len(self.learner_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @property
    def n_responses(self) -> int:
        return len(self.y)


def binary_correct(values: pd.Series, what: str = "responses") -> np.ndarray:
    """``correct`` as int8 0/1; raises LearnopsError on anything else (NaN, 2, 'yes', ...)."""
    s = values
    if s.dtype == object or pd.api.types.is_string_dtype(s):
        lowered = s.astype(str).str.strip().str.lower()
        s = lowered.map({"true": 1, "false": 0, "1": 1, "0": 0, "1.0": 1, "0.0": 0})
    num = pd.to_numeric(s, errors="coerce").astype(float)
    bad = ~num.isin([0.0, 1.0])
    if bad.any():
        examples = sorted({repr(v) for v in values[bad].head(50).tolist()})[:5]
        raise LearnopsError(
            f"{what}: column 'correct' must be binary (0/1 or true/false); "
            f"{int(bad.sum())} bad value(s), e.g. {', '.join(examples)}"
        )
    return num.to_numpy().astype(np.int8)


def _ids(series: pd.Series, name: str, what: str) -> tuple[np.ndarray, np.ndarray]:
    if series.isna().any():
        raise LearnopsError(f"{what}: {int(series.isna().sum())} missing value(s) in '{name}'")
    codes, uniques = pd.factorize(series, sort=True)
    return codes.astype(np.int64), np.asarray(uniques).astype(str).astype(object)


def encode(df: pd.DataFrame, what: str = "responses") -> Encoded:
    """Validate a long-format response table and code learners and items as integers."""
    lcol = learner_column(df, what)
    missing = [c for c in ("item_id", "correct") if c not in df.columns]
    if missing:
        raise LearnopsError(f"{what}: missing column(s): {', '.join(missing)}")
    if len(df) == 0:
        raise LearnopsError(f"{what}: no responses")
    y = binary_correct(df["correct"], what)
    lcodes, lids = _ids(df[lcol], lcol, what)
    icodes, iids = _ids(df["item_id"], "item_id", what)
    return Encoded(lids, iids, lcodes, icodes, y)


def data_warnings(enc: Encoded) -> list[str]:
    """Human-readable notes on items/learners the data can barely identify."""
    out: list[str] = []
    n = np.bincount(enc.item, minlength=enc.n_items)
    k = np.bincount(enc.item, weights=enc.y, minlength=enc.n_items)
    out += _listed("item(s) with all responses correct", enc.item_ids[(k == n) & (n > 0)])
    out += _listed("item(s) with all responses wrong", enc.item_ids[k == 0])
    out += _listed("item(s) with a single response", enc.item_ids[n == 1])
    nl = np.bincount(enc.learner, minlength=enc.n_learners)
    if (nl == 1).any():
        out.append(
            f"{int((nl == 1).sum())} learner(s) with a single response "
            "(their ability is mostly the prior)"
        )
    return out


def _listed(label: str, ids: np.ndarray, limit: int = 10) -> list[str]:
    if len(ids) == 0:
        return []
    shown = ", ".join(map(str, ids[:limit])) + (", ..." if len(ids) > limit else "")
    return [f"{len(ids)} {label}: {shown}"]


def evaluate_predictions(y: Any, p: Any) -> dict[str, Any]:
    """Held-out metrics of P(correct) against 0/1 answers:
    :func:`learnops.evaluation.metrics.binary_metrics` (AUC is NaN when y has one class)."""
    from learnops.evaluation.metrics import binary_metrics

    return binary_metrics(np.asarray(y, dtype=float), np.asarray(p, dtype=float))
