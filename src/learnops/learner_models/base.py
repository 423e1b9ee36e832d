"""What every learner model shares: responses as per-learner sequences, prior counts, and the
prediction they all return.

A learner model is fitted on a response table and then predicts, for every row of another
response table, P(correct) of that answer from the learner's *earlier* rows only (and from the
fitted parameters). Rows are ordered within a learner by ``timestamp`` (when present), ties by
their position in the table; a prediction never reads the row itself or any later row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pandas as pd

from learnops.errors import LearnopsError

#: Module name used when the response table has no ``module`` column.
NO_MODULE = "all"


@dataclass(frozen=True)
class Sequences:
    """A response table sorted learner by learner, in time order within each learner."""

    order: np.ndarray
    """Row of the input table at each sorted position."""
    learner: np.ndarray
    """Learner code (0..n_learners-1) per sorted row; each learner's rows are contiguous."""
    learner_ids: np.ndarray
    item_ids: np.ndarray
    """Item id (str) per sorted row."""
    module: np.ndarray
    """Module code per sorted row (index into ``module_ids``)."""
    module_ids: np.ndarray
    y: np.ndarray
    """0/1 answer per sorted row (float)."""
    start: np.ndarray
    """Sorted position of the learner's first row, per sorted row."""
    n_prior: np.ndarray
    """Number of the learner's earlier rows, per sorted row."""

    @property
    def n(self) -> int:
        """Number of rows."""
        return int(self.y.size)

    def unsort(self, values: np.ndarray) -> np.ndarray:
        """Per-row values in sorted order → the input table's row order."""
        out = np.empty_like(values)
        out[self.order] = values
        return out


def prepare(responses: pd.DataFrame) -> Sequences:
    """Validate and sort ``responses`` (learner_id|learner_hash, item_id, correct[, module,
    timestamp]) into :class:`Sequences`."""
    from learnops.data.splits import learner_column

    lcol = learner_column(responses)
    missing = [c for c in ("item_id", "correct") if c not in responses.columns]
    if missing:
        raise LearnopsError(f"responses: missing column(s): {', '.join(missing)}")
    y = pd.to_numeric(responses["correct"], errors="coerce").to_numpy(float)
    if np.isnan(y).any() or not np.isin(y, (0.0, 1.0)).all():
        raise LearnopsError("responses: correct must be 0 or 1 in every row")
    learner_codes, learner_ids = _factorize_sorted(responses[lcol])
    n = len(responses)
    if "timestamp" in responses.columns:
        ts = pd.to_datetime(responses["timestamp"], utc=True).to_numpy("datetime64[ns]")
        ts = ts.view(np.int64)
    else:
        ts = np.zeros(n, dtype=np.int64)
    # by learner, then time, then row (lexsort is stable: equal keys keep the rows' order);
    # temporaries are dropped as soon as they are used (large tables: bytes per row count)
    order = np.lexsort((ts, learner_codes))
    del ts
    learner = learner_codes[order].astype(np.int64, copy=False)
    del learner_codes
    if "module" in responses.columns and isinstance(responses["module"].dtype, pd.CategoricalDtype):
        mod_codes, module_ids = _factorize_sorted(responses["module"], missing=NO_MODULE)
    elif "module" in responses.columns:
        modules = responses["module"].astype(object).where(responses["module"].notna(), NO_MODULE)
        mod_codes, module_ids = pd.factorize(modules.astype(str), sort=True)
        del modules
    else:
        mod_codes, module_ids = np.zeros(n, dtype=np.int64), pd.Index([NO_MODULE])
    module = np.asarray(mod_codes)[order].astype(np.int64, copy=False)
    del mod_codes
    first = np.r_[True, learner[1:] != learner[:-1]] if n else np.zeros(0, bool)
    start = np.where(first, np.arange(n), 0) if n else np.zeros(0, int)
    del first
    np.maximum.accumulate(start, out=start)
    n_prior = np.arange(n) - start
    return Sequences(
        order=order,
        learner=learner,
        learner_ids=np.asarray(learner_ids, dtype=str),
        item_ids=_str_values(responses["item_id"])[order],
        module=module,
        module_ids=np.asarray(module_ids, dtype=str),
        y=y[order],
        start=start,
        n_prior=n_prior,
    )


def _factorize_sorted(values: pd.Series, missing: str | None = None) -> tuple[np.ndarray, pd.Index]:
    """(code per row, the distinct ids as str, sorted): ``pd.factorize(values.astype(str),
    sort=True)``; a categorical column is coded through the categories that occur, without a str
    per row (the compact tables of a large export). Missing values are ``missing`` (None: an
    error)."""
    if not isinstance(values.dtype, pd.CategoricalDtype):
        return pd.factorize(values.astype(str), sort=True)
    cat = values.cat
    codes = cat.codes.to_numpy().astype(np.int64)
    k = len(cat.categories)
    if (codes < 0).any():
        if missing is None:
            raise LearnopsError(f"responses: {values.name} is missing in some rows")
        codes = np.where(codes < 0, k, codes)
    used = np.unique(codes)  # the categories that occur, not merely declared
    names = pd.Index(
        [missing if c == k else str(cat.categories[c]) for c in used.tolist()], dtype=object
    )
    per_name, ids = pd.factorize(names.astype(str), sort=True)
    remap = np.full(k + 1, -1, dtype=np.int64)
    remap[used] = per_name
    return remap[codes], ids


def _str_values(values: pd.Series) -> np.ndarray:
    """``values.astype(str).to_numpy()``: an object array of str; a categorical column's rows
    share their category's str object (8 bytes a row)."""
    if not isinstance(values.dtype, pd.CategoricalDtype):
        return values.astype(str).to_numpy()
    names = np.asarray(pd.Index(values.cat.categories).astype(object).astype(str), dtype=object)
    codes = values.cat.codes.to_numpy()
    if (codes < 0).any():
        raise LearnopsError("responses: an item id is missing")
    return names[codes]


def prior_counts(seq: Sequences, group: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(successes, failures) of each row's learner *before* that row, per sorted row: overall
    (``group=None``) or within the row's group (e.g. its module)."""
    key = seq.learner if group is None else seq.learner * (int(group.max(initial=0)) + 1) + group
    s = pd.Series(seq.y)
    grouped = s.groupby(key, sort=False)
    successes = (grouped.cumsum() - s).to_numpy(float)
    seen = grouped.cumcount().to_numpy(float)
    return successes, seen - successes


def item_index(seq: Sequences, known: pd.Index, what: str) -> np.ndarray:
    """Position of each sorted row's item in ``known``; unknown items are a clear error."""
    pos = known.get_indexer(seq.item_ids)
    if (pos < 0).any():
        unknown = pd.unique(seq.item_ids[pos < 0])
        shown = ", ".join(map(str, unknown[:10])) + (", ..." if len(unknown) > 10 else "")
        raise LearnopsError(f"{what}: {len(unknown)} item(s) not seen in fitting: {shown}")
    return pos


@dataclass
class Prediction:
    """A model's prediction of every row of a response table, in the table's row order."""

    p: np.ndarray
    """P(correct) from the learner's earlier rows."""
    ability: np.ndarray
    """The learner's ability estimate just before the row (θ scale; NaN: the model has none)."""
    ability_se: np.ndarray
    """Its standard error (NaN when the model has none)."""


class LearnerModel(Protocol):
    """The interface of every learner model."""

    name: str

    def fit(self, responses: pd.DataFrame) -> LearnerModel:
        """Estimate the model's parameters on a response table; returns the model."""
        ...

    def predict(self, responses: pd.DataFrame) -> Prediction:
        """Predict every row of ``responses`` from the same learner's earlier rows."""
        ...
