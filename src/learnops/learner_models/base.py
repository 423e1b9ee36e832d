"""What every learner model shares: responses as per-learner sequences, prior counts, and the
prediction they all return.

A learner model is fitted on a response table and then predicts, for every row of another
response table, P(correct) of that answer from the learner's *earlier* rows only (and from the
fitted parameters). Rows are ordered within a learner by ``timestamp`` (when present), ties by
their position in the table; a prediction never reads the row itself or any later row.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Protocol

import numpy as np
import pandas as pd

from learnops.errors import LearnopsError

#: Module name used when the response table has no ``module`` column.
NO_MODULE = "all"


@dataclass(frozen=True)
class Sequences:
    """A response table sorted learner by learner, in time order within each learner, in compact
    arrays: codes instead of a str per row, about 19 bytes a row (int32 positions, learner and
    item codes and counts, int16 module codes, int8 answers)."""

    order: np.ndarray
    """Row of the input table at each sorted position (int32; int64 from 2**31 rows)."""
    learner: np.ndarray
    """Learner code (0..n_learners-1) per sorted row (int32); each learner's rows are
    contiguous."""
    learner_ids: np.ndarray
    """The learner ids (str, object array), sorted: a learner's code is its position."""
    item: np.ndarray
    """Item code per sorted row (int32): the position of its id in ``item_names``."""
    item_names: np.ndarray
    """The item ids (str, object array), sorted."""
    module: np.ndarray
    """Module code per sorted row (index into ``module_ids``; int16, int32 past 32,767)."""
    module_ids: np.ndarray
    y: np.ndarray
    """0/1 answer per sorted row (int8)."""
    n_prior: np.ndarray
    """Number of the learner's earlier rows, per sorted row (dtype of ``order``)."""

    @property
    def n(self) -> int:
        """Number of rows."""
        return int(self.y.size)

    @property
    def item_ids(self) -> np.ndarray:
        """Item id (str) per sorted row: an object array made on each call (8 bytes a row)."""
        return self.item_names[self.item]

    @cached_property
    def start(self) -> np.ndarray:
        """Sorted position of the learner's first row, per sorted row (made once, on first
        use)."""
        start = np.arange(self.n, dtype=self.n_prior.dtype)
        start -= self.n_prior
        return start

    def unsort(self, values: np.ndarray) -> np.ndarray:
        """Per-row values in sorted order → the input table's row order."""
        out = np.empty_like(values)
        out[self.order] = values
        return out

    def subset(self, keep: np.ndarray) -> Sequences:
        """The sorted rows where ``keep`` is true as sequences of their own (``order``: the
        positions in these sequences; ``n_prior`` recounted among the kept rows; codes and ids
        unchanged)."""
        idx = np.flatnonzero(keep).astype(self.order.dtype, copy=False)
        learner = self.learner[idx]
        return Sequences(
            order=np.arange(idx.size, dtype=self.order.dtype),
            learner=learner,
            learner_ids=self.learner_ids,
            item=self.item[idx],
            item_names=self.item_names,
            module=self.module[idx],
            module_ids=self.module_ids,
            y=self.y[idx],
            n_prior=_counts_before(learner, self.order.dtype),
        )


def _index_dtype(n: int) -> type:
    """int32 for positions and counts below 2**31, else int64."""
    return np.int32 if n < 2**31 else np.int64


def _counts_before(learner: np.ndarray, dtype: type) -> np.ndarray:
    """Per row of learner-contiguous codes, the number of the same learner's earlier rows."""
    n = learner.size
    if not n:
        return np.zeros(0, dtype)
    start = np.arange(n, dtype=dtype)
    start[1:][learner[1:] == learner[:-1]] = 0
    np.maximum.accumulate(start, out=start)
    out = np.arange(n, dtype=dtype)
    out -= start
    return out


def prepare(responses: pd.DataFrame) -> Sequences:
    """Validate and sort ``responses`` (learner_id|learner_hash, item_id, correct[, module,
    timestamp]) into :class:`Sequences`. Categorical id columns are coded through their
    categories, without a str per row (the compact answers of a large export)."""
    from learnops.data.splits import learner_column

    lcol = learner_column(responses)
    missing = [c for c in ("item_id", "correct") if c not in responses.columns]
    if missing:
        raise LearnopsError(f"responses: missing column(s): {', '.join(missing)}")
    y = _answers(responses["correct"])
    n = len(responses)
    idx = _index_dtype(n)
    learner_codes, learner_ids = _factorize_sorted(responses[lcol])
    if "timestamp" in responses.columns:
        ts = pd.to_datetime(responses["timestamp"], utc=True).to_numpy("datetime64[ns]")
        ts = ts.view(np.int64)
    else:
        ts = np.zeros(n, dtype=np.int64)
    # by learner, then time, then row (lexsort is stable: equal keys keep the rows' order);
    # temporaries are dropped as soon as they are used (large tables: bytes per row count)
    order = np.lexsort((ts, learner_codes)).astype(idx, copy=False)
    del ts
    learner = learner_codes[order]
    del learner_codes
    y = y[order]
    item_codes, item_names = _factorize_sorted(responses["item_id"], what="an item id")
    item = item_codes[order]
    del item_codes
    if "module" in responses.columns and isinstance(responses["module"].dtype, pd.CategoricalDtype):
        mod_codes, module_ids = _factorize_sorted(responses["module"], missing=NO_MODULE)
    elif "module" in responses.columns:
        modules = responses["module"].astype(object).where(responses["module"].notna(), NO_MODULE)
        mod_codes, module_ids = pd.factorize(modules.astype(str), sort=True)
        del modules
    else:
        mod_codes, module_ids = np.zeros(n, dtype=np.int64), pd.Index([NO_MODULE])
    small = np.int16 if len(module_ids) <= np.iinfo(np.int16).max else np.int32
    module = np.asarray(mod_codes)[order].astype(small, copy=False)
    del mod_codes
    return Sequences(
        order=order,
        learner=learner,
        learner_ids=_object_str(learner_ids),
        item=item,
        item_names=_object_str(item_names),
        module=module,
        module_ids=np.asarray(module_ids, dtype=str),
        y=y,
        n_prior=_counts_before(learner, idx),
    )


def _object_str(ids: pd.Index) -> np.ndarray:
    """Ids as an object array of str: the ids' own str objects when they are str already (a
    fixed-width str array would take 4 bytes a character for every id, a copy 50 more)."""
    values = np.asarray(ids, dtype=object)
    if pd.api.types.infer_dtype(values, skipna=False) in ("string", "empty"):
        return values
    return np.asarray(pd.Index(values, dtype=object).astype(str), dtype=object)


def _answers(correct: pd.Series) -> np.ndarray:
    """The 0/1 answers as int8; anything else (missing, not a number, not 0 or 1) is an
    error."""
    values = pd.to_numeric(correct, errors="coerce")
    if isinstance(values.dtype, np.dtype) and values.dtype.kind in "biu":  # no float copy
        v = values.to_numpy()
        ok = bool(((v == 0) | (v == 1)).all())
    else:
        v = values.to_numpy(float)
        ok = not np.isnan(v).any() and bool(np.isin(v, (0.0, 1.0)).all())
    if not ok:
        raise LearnopsError("responses: correct must be 0 or 1 in every row")
    return v.astype(np.int8)


def _factorize_sorted(
    values: pd.Series, missing: str | None = None, what: str | None = None
) -> tuple[np.ndarray, pd.Index]:
    """(code per row, the distinct ids as str, sorted): ``pd.factorize(values.astype(str),
    sort=True)`` with int32 codes; a categorical column is coded through the categories that
    occur, without a str per row. A categorical's missing values are ``missing`` (None: an
    error, naming ``what`` or else the column)."""
    if not isinstance(values.dtype, pd.CategoricalDtype):
        codes, ids = pd.factorize(values.astype(str), sort=True)
        return codes.astype(_index_dtype(len(ids) + 1), copy=False), ids
    cat = values.cat
    codes = cat.codes.to_numpy()
    k = len(cat.categories)
    if (codes < 0).any():
        if missing is None:
            raise LearnopsError(
                f"responses: {what} is missing"
                if what
                else f"responses: {values.name} is missing in some rows"
            )
        codes = np.where(codes < 0, k, codes)
    used = np.flatnonzero(np.bincount(codes, minlength=k + 1))  # categories that occur
    names = pd.Index(
        [missing if c == k else str(cat.categories[c]) for c in used.tolist()], dtype=object
    )
    index = _index_dtype(k + 2)
    if names.is_monotonic_increasing and names.is_unique:  # sorted already (read_answers)
        per_name, ids = np.arange(len(names), dtype=index), names
    else:
        per_name, ids = pd.factorize(names.astype(str), sort=True)
    remap = np.full(k + 1, -1, dtype=index)
    remap[used] = per_name
    return remap[codes], ids


def prior_counts(seq: Sequences, group: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(successes, failures) of each row's learner *before* that row, per sorted row: overall
    (``group=None``) or within the row's group (e.g. its module)."""
    learner = seq.learner.astype(np.int64)
    key = learner if group is None else learner * (int(group.max(initial=0)) + 1) + group
    s = pd.Series(seq.y, dtype=float)
    grouped = s.groupby(key, sort=False)
    successes = (grouped.cumsum() - s).to_numpy(float)
    seen = grouped.cumcount().to_numpy(float)
    return successes, seen - successes


def item_index(seq: Sequences, known: pd.Index, what: str) -> np.ndarray:
    """Position of each sorted row's item in ``known``; unknown items are a clear error."""
    pos = known.get_indexer(seq.item_names)[seq.item]
    if (pos < 0).any():
        raise unknown_items(seq.item_names[pd.unique(seq.item[pos < 0])], what)
    return pos


def unknown_items(unknown: np.ndarray, what: str) -> LearnopsError:
    """The error for answers to items a model was not fitted on (``unknown``: their ids, in
    order of first appearance)."""
    shown = ", ".join(map(str, unknown[:10])) + (", ..." if len(unknown) > 10 else "")
    return LearnopsError(f"{what}: {len(unknown)} item(s) not seen in fitting: {shown}")


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
