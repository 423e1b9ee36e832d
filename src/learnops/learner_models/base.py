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
    arrays (codes instead of a str per row: about 21 bytes a row on a large table)."""

    order: np.ndarray
    """Row of the input table at each sorted position (int32; int64 past 2**31 rows)."""
    learner: np.ndarray
    """Learner code (0..n_learners-1) per sorted row (int32); each learner's rows are
    contiguous."""
    learner_ids: np.ndarray
    """The learner ids (str, object array), sorted; a learner's code is its position."""
    item: np.ndarray
    """Item code per sorted row (int32): the position of its id in ``item_names``."""
    item_names: np.ndarray
    """The item ids (str, object array), sorted."""
    module: np.ndarray
    """Module code per sorted row (index into ``module_ids``; int16, int32 past 32767)."""
    module_ids: np.ndarray
    y: np.ndarray
    """0/1 answer per sorted row (int8)."""
    n_prior: np.ndarray
    """Number of the learner's earlier rows, per sorted row (int32; int64 past 2**31)."""

    @property
    def n(self) -> int:
        """Number of rows."""
        return int(self.y.size)

    @property
    def item_ids(self) -> np.ndarray:
        """Item id (str) per sorted row (an object array made on each call: 8 bytes a row)."""
        return self.item_names[self.item]

    @cached_property
    def start(self) -> np.ndarray:
        """Sorted position of the learner's first row, per sorted row (computed once)."""
        return np.arange(self.n, dtype=self.n_prior.dtype) - self.n_prior

    @cached_property
    def rounds(self) -> tuple[np.ndarray, np.ndarray]:
        """(sorted rows ordered by ``n_prior``, stable; the end of each round in that order):
        round k holds every learner's k-th row (computed once)."""
        order = np.argsort(self.n_prior, kind="stable").astype(self.n_prior.dtype, copy=False)
        bounds = np.cumsum(np.bincount(self.n_prior)) if self.n else np.zeros(0, np.int64)
        return order, bounds

    def unsort(self, values: np.ndarray) -> np.ndarray:
        """Per-row values in sorted order → the input table's row order."""
        out = np.empty_like(values)
        out[self.order] = values
        return out


def _index_dtype(n: int) -> type:
    """int32 for positions and counts below 2**31, else int64."""
    return np.int32 if n < 2**31 else np.int64


def prepare(responses: pd.DataFrame) -> Sequences:
    """Validate and sort ``responses`` (learner_id|learner_hash, item_id, correct[, module,
    timestamp]) into :class:`Sequences`. Categorical id columns are coded through their
    categories (never a str per row)."""
    from learnops.data.splits import learner_column

    lcol = learner_column(responses)
    missing = [c for c in ("item_id", "correct") if c not in responses.columns]
    if missing:
        raise LearnopsError(f"responses: missing column(s): {', '.join(missing)}")
    y = _answers(responses["correct"])
    learner_codes, learner_ids = _factorize_sorted(responses[lcol])
    n = len(responses)
    idx = _index_dtype(n)
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
    item_codes, item_names = _item_codes(responses["item_id"])
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
    small = np.int16 if len(module_ids) < 2**15 else np.int32
    module = np.asarray(mod_codes)[order].astype(small, copy=False)
    del mod_codes
    first = np.r_[True, learner[1:] != learner[:-1]] if n else np.zeros(0, bool)
    start = np.where(first, np.arange(n, dtype=idx), idx(0)) if n else np.zeros(0, idx)
    del first
    np.maximum.accumulate(start, out=start)
    n_prior = np.arange(n, dtype=idx)
    n_prior -= start
    del start
    return Sequences(
        order=order,
        learner=learner,
        learner_ids=_str_objects(learner_ids),
        item=item,
        item_names=item_names,
        module=module,
        module_ids=np.asarray(module_ids, dtype=str),
        y=y,
        n_prior=n_prior,
    )


def _str_objects(ids: pd.Index | np.ndarray) -> np.ndarray:
    """``ids`` (str) as an object array, reusing its str objects when it holds some already."""
    if isinstance(ids, np.ndarray) and ids.dtype == object:
        return ids
    return np.asarray(pd.Index(ids).astype(str), dtype=object)


def _answers(correct: pd.Series) -> np.ndarray:
    """The 0/1 answers as int8; anything else (missing, not a number, not 0 or 1) is an error."""
    values = pd.to_numeric(correct, errors="coerce")
    if isinstance(values.dtype, np.dtype) and values.dtype.kind in "biu":  # no float copy
        v = values.to_numpy()
        ok = bool(((v == 0) | (v == 1)).all())
    else:
        f = values.to_numpy(float)
        ok = not np.isnan(f).any() and bool(np.isin(f, (0.0, 1.0)).all())
        v = f
    if not ok:
        raise LearnopsError("responses: correct must be 0 or 1 in every row")
    return v.astype(np.int8)


def _item_codes(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(int32 code per row, the item ids as str, sorted) of the item column; a categorical
    column's missing item is an error (a plain column's is the str of the value, as
    ``astype(str)`` gives it)."""
    if isinstance(values.dtype, pd.CategoricalDtype) and (values.cat.codes.to_numpy() < 0).any():
        raise LearnopsError("responses: an item id is missing")
    codes, names = _factorize_sorted(values)
    return codes, _str_objects(names)


def _factorize_sorted(
    values: pd.Series, missing: str | None = None
) -> tuple[np.ndarray, pd.Index | np.ndarray]:
    """(code per row, the distinct ids as str, sorted): ``pd.factorize(values.astype(str),
    sort=True)`` with int32 codes; a categorical column is coded through the categories that
    occur, without a str per row (the compact tables of a large export). Missing values are
    ``missing`` (None: an error)."""
    if not isinstance(values.dtype, pd.CategoricalDtype):
        codes, ids = pd.factorize(values.astype(str), sort=True)
        return codes.astype(_index_dtype(len(ids)), copy=False), ids
    cat = values.cat
    codes = cat.codes.to_numpy()
    k = len(cat.categories)
    if (codes < 0).any():
        if missing is None:
            raise LearnopsError(f"responses: {values.name} is missing in some rows")
        codes = np.where(codes < 0, k, codes)
    used = np.flatnonzero(np.bincount(codes, minlength=k + 1))  # the categories that occur
    names = pd.Index(
        [missing if c == k else str(cat.categories[c]) for c in used.tolist()], dtype=object
    )
    # the names are str objects (the categories' own): sorted as str, kept as those objects
    per_name, ids = pd.factorize(np.asarray(names, dtype=object), sort=True)
    remap = np.full(k + 1, -1, dtype=_index_dtype(k + 1))
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
    pos = known.get_indexer(seq.item_names).astype(np.int32 if len(known) < 2**31 else np.int64)
    pos = pos[seq.item]
    if (pos < 0).any():
        unknown = seq.item_names[pd.unique(seq.item[pos < 0])]
        shown = ", ".join(map(str, unknown[:10])) + (", ..." if len(unknown) > 10 else "")
        raise LearnopsError(f"{what}: {len(unknown)} item(s) not seen in fitting: {shown}")
    return pos


def item_values(seq: Sequences, values: pd.Series, what: str) -> np.ndarray:
    """``values`` (indexed by item id) per item code of ``seq`` (NaN for an item no row
    answers): ``values`` of each row's item is ``out[seq.item]``, without a per-row array.
    An item answered by some row and missing from ``values`` is a clear error."""
    pos = pd.Index(values.index).get_indexer(seq.item_names)
    used = np.bincount(seq.item, minlength=seq.item_names.size) > 0
    unknown = used & (pos < 0)
    if unknown.any():
        first = np.flatnonzero(unknown[seq.item])  # in order of first appearance in the rows
        names = seq.item_names[pd.unique(seq.item[first])]
        shown = ", ".join(map(str, names[:10])) + (", ..." if len(names) > 10 else "")
        raise LearnopsError(f"{what}: {len(names)} item(s) not seen in fitting: {shown}")
    out = np.full(seq.item_names.size, np.nan)
    out[pos >= 0] = values.to_numpy(float)[pos[pos >= 0]]
    return out


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
