"""The learner's current ability from a chosen learner model (``irt.ability_model``), as of given
times: what the decision features ``ability``/``ability_se`` should hold when a decision is made.

The ability as of time *t* uses only the learner's answers strictly before *t*: it is the model's
pre-answer estimate of the learner's first answer at or after *t*, or, past the last answer, of a
probe appended after it (a probe at the end is read by nothing, so it changes no estimate).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from learnops.errors import LearnopsError

if TYPE_CHECKING:
    from learnops.config import Params

ABILITY_MODELS = ("irt", "elo", "best_lr")


def fit_ability_model(name: str, responses: pd.DataFrame, params: Params) -> Any:
    """The learner model ``name`` (irt | elo | best_lr) fitted on ``responses``; Elo's step is
    tuned on ``learner_models.val_split`` of the learners."""
    from learnops.learner_models.base import prepare
    from learnops.learner_models.best_lr import BestLr
    from learnops.learner_models.irt_static import StaticIrt

    cfg = params.learner_models
    if name not in ABILITY_MODELS:
        known = ", ".join(ABILITY_MODELS)
        raise LearnopsError(f"ability model must be one of {known}, not {name!r}")
    if name == "elo":
        from learnops.learner_models.elo import tune_sequences

        valid = _elo_validation(responses, params)
        seq = prepare(responses)
        model, _ = tune_sequences(seq, valid[seq.order], cfg.elo_alpha, cfg.elo_beta)
        return model
    irt = StaticIrt(params.irt, params.seed).fit(responses)
    return irt if name == "irt" else BestLr(irt, C=cfg.C, fit_irt=False).fit(responses)


def _elo_validation(responses: pd.DataFrame, params: Params) -> np.ndarray:
    """Per row of ``responses``, whether its learner is one of the validation learners Elo's
    step is tuned on (``learner_models.val_split`` of the learners, by a seeded hash)."""
    from learnops.data.splits import learner_column, learner_split_mask

    cfg = params.learner_models
    learners = responses[learner_column(responses)]
    if not isinstance(learners.dtype, pd.CategoricalDtype):
        return learner_split_mask(learners, cfg.val_split, params.seed, "elo")
    # the side of each distinct learner (in order of appearance), then of each row: the same
    # sides as of the rows, without a str per row
    codes = learners.cat.codes.to_numpy()
    uniq = pd.unique(codes)
    side = learner_split_mask(
        np.asarray(learners.cat.categories[uniq], dtype=object), cfg.val_split, params.seed, "elo"
    )
    at = np.zeros(len(learners.cat.categories), dtype=np.int64)
    at[uniq] = np.arange(uniq.size)
    return side[at[codes]]


def ability_asof(model: Any, responses: pd.DataFrame, queries: pd.DataFrame) -> pd.DataFrame:
    """``ability`` and ``ability_se`` for every query row (learner column as in ``responses``,
    ``timestamp``), from the learner's answers strictly before the query's timestamp; a learner
    with no earlier answer gets the model's starting estimate. Rows in ``queries`` order."""
    from learnops.data.splits import learner_column

    lcol = learner_column(responses)
    if responses.empty:
        raise LearnopsError("no responses to estimate abilities from")
    if lcol not in queries.columns or "timestamp" not in queries.columns:
        raise LearnopsError(f"queries: need columns {lcol} and timestamp")
    r = responses[[lcol, "item_id", "correct", "timestamp", *(
        ["module"] if "module" in responses.columns else [])]].copy()  # fmt: skip
    # one resolution for both (merge_asof refuses e.g. ns against us)
    r["timestamp"] = pd.to_datetime(r["timestamp"], utc=True).astype("datetime64[ns, UTC]")
    q = queries[[lcol, "timestamp"]].copy()
    q["timestamp"] = pd.to_datetime(q["timestamp"], utc=True).astype("datetime64[ns, UTC]")
    q[lcol] = q[lcol].astype(str)
    r[lcol] = r[lcol].astype(str)
    end = max(r["timestamp"].max(), q["timestamp"].max()) + pd.Timedelta(seconds=1)
    learners = pd.unique(pd.concat([r[lcol], q[lcol]]))
    probe = r.iloc[[0] * len(learners)].copy()
    probe[lcol] = learners
    probe["timestamp"] = end
    probe["correct"] = 0
    table = pd.concat([r, probe], ignore_index=True)
    pred = model.predict(table)
    table["ability"] = pred.ability
    table["ability_se"] = pred.ability_se
    table = table.sort_values("timestamp", kind="stable")
    # the first answer at or after t: its pre-answer estimate (earlier answers only)
    first = table.groupby([lcol, "timestamp"], sort=False).head(1)
    q["_row"] = np.arange(len(q))
    out = pd.merge_asof(
        q.sort_values("timestamp", kind="stable"),
        first[[lcol, "timestamp", "ability", "ability_se"]],
        on="timestamp",
        by=lcol,
        direction="forward",
        allow_exact_matches=True,
    )
    return out.sort_values("_row")[["ability", "ability_se"]].reset_index(drop=True)


def prior_ability(model: Any) -> tuple[float, float]:
    """(ability, ability_se) ``model`` gives a learner with no answer yet: its estimate before a
    first answer (static IRT and Best-LR: the EAP of the prior; Elo: θ 0, SE 1)."""
    items = sorted(known_items(model))
    if not items:
        raise LearnopsError("the learner model knows no item")
    probe = pd.DataFrame(
        {"learner_hash": ["_"], "item_id": [items[0]], "correct": [0], "module": ["_"]}
    )
    pred = model.predict(probe)
    return float(pred.ability[0]), max(float(pred.ability_se[0]), 0.0)


def learner_ability(
    model: Any,
    history: pd.DataFrame,
    at: Any,
    known: set[str] | None = None,
    prior: tuple[float, float] | None = None,
) -> tuple[float, float, int, int]:
    """(ability, ability_se, answers used, answers left out) of one learner as of ``at`` from
    ``history`` (that learner's responses): what :func:`ability_asof` gives for the learner at
    ``at``, from the answers strictly before ``at`` to items ``model`` knows (answers to items
    it was not fitted on are left out and counted; ``known``: :func:`known_items` of ``model``,
    computed when not given). No answer: ``prior`` (default :func:`prior_ability`).

    The learner's answers and a probe after them go through ``model.predict`` once; the probe's
    pre-answer estimate is the ability (the same rows and probe :func:`ability_asof` reads,
    without its table-wide bookkeeping: one learner's replay takes milliseconds)."""
    at = pd.Timestamp(at)
    at = at.tz_localize("UTC") if at.tzinfo is None else at.tz_convert("UTC")
    if not history.empty:
        ts = pd.to_datetime(history["timestamp"], utc=True)
        history = history.loc[(ts < at).to_numpy()]
    n_all = len(history)
    if n_all:
        known = known if known is not None else known_items(model)
        keep = np.fromiter((i in known for i in history["item_id"].astype(str)), bool, n_all)
        history = history.loc[keep]
    if history.empty:
        ability, se = prior if prior is not None else prior_ability(model)
        return ability, se, 0, n_all
    from learnops.data.splits import learner_column

    lcol = learner_column(history)
    cols = [lcol, "item_id", "correct", "timestamp", *(
        ["module"] if "module" in history.columns else [])]  # fmt: skip
    last = history.iloc[[-1]][cols].copy()
    last["timestamp"] = pd.to_datetime(last["timestamp"], utc=True) + pd.Timedelta(seconds=1)
    last["correct"] = 0
    table = pd.concat([history[cols], last], ignore_index=True)
    table["timestamp"] = pd.to_datetime(table["timestamp"], utc=True)
    pred = model.predict(table)
    ability, se = float(pred.ability[-1]), max(float(pred.ability_se[-1]), 0.0)
    return ability, se, len(history), n_all - len(history)


def supply_abilities(
    decisions: pd.DataFrame, responses: pd.DataFrame, params: Params
) -> pd.DataFrame:
    """``decisions`` with ``ability``/``ability_se`` from the model ``irt.ability_model`` names,
    as of each decision's time (the learner's answers strictly before it; the model fitted on
    ``responses``). With ``irt`` (the default), and when there are no responses to estimate from
    (a warning is logged), the logged values are kept: ``decisions`` itself is returned. The
    estimates come from :func:`ability_source`'s trajectory (what the streaming export writes;
    the numbers of :func:`ability_asof`, in compact arrays)."""
    name = params.irt.ability_model
    if name == "irt" or decisions.empty:
        return decisions
    if responses.empty:  # e.g. a window of served decisions only: nothing to estimate from
        import logging

        logging.getLogger("learnops.ability").warning(
            "irt.ability_model=%s: no responses in the window, the logged ability/ability_se "
            "are kept",
            name,
        )
        return decisions
    from learnops.data.splits import learner_column

    lcol = learner_column(responses)
    if lcol not in decisions.columns or "timestamp" not in decisions.columns:
        raise LearnopsError(f"decisions: need columns {lcol} and timestamp")
    until = pd.Timestamp(int(_ns(decisions["timestamp"]).max()), tz="UTC")
    source = ability_source(responses, decisions[lcol], until, params)
    ability, se = source.asof(decisions[lcol], decisions["timestamp"])
    out = decisions.copy()
    out["ability"] = ability
    out["ability_se"] = np.maximum(se, 0.0)
    return out


@dataclass(frozen=True)
class AbilityTrajectory:
    """Every learner's ability estimate as of each of their answers, in compact arrays: what
    :func:`ability_asof` reads, computed once so that queries can come in chunks.

    Entries are sorted by (learner, time); entry ``k`` of a learner at time ``t`` holds the
    pre-answer estimate of the learner's first answer at ``t`` (from the answers strictly before
    ``t``); each learner's last entry is the probe after all their answers and the queries."""

    learners: pd.Index
    """The learner ids (str), sorted; a learner's code is its position."""
    code: np.ndarray
    """Learner code per entry (int32)."""
    timestamp: np.ndarray
    """Time per entry (int64 ns since the epoch, UTC)."""
    ability: np.ndarray
    ability_se: np.ndarray
    """The estimate and its SE (at least 0) per entry (float64)."""

    @property
    def nbytes(self) -> int:
        """Bytes held by the entry arrays (the learner ids not counted)."""
        return sum(a.nbytes for a in (self.code, self.timestamp, self.ability, self.ability_se))

    @cached_property
    def starts(self) -> np.ndarray:
        """Each learner's first entry, and the number of entries last (made once, on first
        use: the decisions query the trajectory a row group at a time)."""
        return np.searchsorted(self.code, np.arange(len(self.learners) + 1), side="left")

    def asof(self, learners: Any, timestamps: Any) -> tuple[np.ndarray, np.ndarray]:
        """(ability, ability_se) per query (learner id, time): the learner's first entry at or
        after the time (so a decision at the very time of an answer does not see that answer);
        NaN for a learner without entries. What :func:`ability_asof` gives, query by query."""
        t = _ns(timestamps)
        code = self.learners.get_indexer(pd.Index(np.asarray(learners, dtype=object)).astype(str))
        starts = self.starts
        known = code >= 0
        lo = np.where(known, starts[np.maximum(code, 0)], 0)
        hi = np.where(known, starts[np.maximum(code, 0) + 1], 0)
        while True:  # bisect every query's learner's entries at once: first time >= t
            open_ = lo < hi
            if not open_.any():
                break
            mid = (lo + hi) // 2
            right = open_ & (self.timestamp[np.minimum(mid, self.code.size - 1)] < t)
            lo = np.where(right, mid + 1, lo)
            hi = np.where(open_ & ~right, mid, hi)
        end = np.where(known, starts[np.maximum(code, 0) + 1], 0)
        hit = known & (lo < end)
        ability = np.full(t.size, np.nan)
        se = np.full(t.size, np.nan)
        ability[hit] = self.ability[lo[hit]]
        se[hit] = self.ability_se[lo[hit]]
        return ability, se


def _ns(timestamps: Any) -> np.ndarray:
    """Times (anything ``pd.to_datetime`` reads; naive = UTC) as int64 ns since the epoch (a
    view, not a copy, of a column already in ns)."""
    if isinstance(timestamps, pd.Series) and timestamps.dtype == "datetime64[ns, UTC]":
        return timestamps.array.asi8
    t = pd.to_datetime(pd.Series(np.asarray(timestamps)) if not isinstance(timestamps, pd.Series)
                       else timestamps, utc=True)  # fmt: skip
    if t.dtype != "datetime64[ns, UTC]":
        t = t.astype("datetime64[ns, UTC]")
    return t.array.asi8


def ability_trajectory(
    model: Any,
    responses: pd.DataFrame,
    learners: Any = (),
    until: Any = None,
) -> AbilityTrajectory:
    """The :class:`AbilityTrajectory` of ``model`` on ``responses`` (learner column, item_id,
    correct, timestamp[, module]; ids may be categorical), with a probe for every learner of
    ``responses`` and of ``learners`` after the last answer and ``until`` (the latest query
    time): the rows and probe :func:`ability_asof` gives ``model.predict``, so its answers are
    the same to the bit. Memory: 28 bytes per entry kept, and the model's prediction of every
    row (``model.predict``: some tens of bytes per response); Elo replays the prepared answers
    instead (:class:`_EloEntries`: the same numbers without a prediction per row)."""
    from learnops.data.splits import learner_column

    if responses.empty:
        raise LearnopsError("no responses to estimate abilities from")
    if getattr(model, "name", None) == "elo":
        from learnops.learner_models.base import prepare

        return _elo_trajectory(model, prepare(responses), responses["timestamp"], learners, until)
    lcol = learner_column(responses)
    cols = [lcol, "item_id", "correct", "timestamp", *(
        ["module"] if "module" in responses.columns else [])]  # fmt: skip
    r = responses[cols]
    r_ts = _ns(r["timestamp"])
    end = int(r_ts.max()) if until is None else max(int(r_ts.max()), int(_ns([until])[0]))
    end += 1_000_000_000  # one second after the last answer or query
    seen = _ids(r[lcol])
    extra = pd.Index(list(learners), dtype=object).astype(str).unique()
    ids = seen.append(extra.difference(seen)) if len(extra) else seen
    learner_ids = ids.sort_values()
    code = np.concatenate([_codes(r[lcol], learner_ids), learner_ids.get_indexer(ids)])
    code = code.astype(np.int32)
    ability, se = _predict_abilities(model, r, lcol, ids, end, code)
    ts = np.concatenate([r_ts, np.full(len(ids), end, dtype=np.int64)])
    order = np.lexsort((ts, code))  # stable: equal times keep the table's order
    code, ts = code[order], ts[order]
    first = np.r_[True, (code[1:] != code[:-1]) | (ts[1:] != ts[:-1])]
    keep = order[first]
    return AbilityTrajectory(
        learners=learner_ids,
        code=code[first],
        timestamp=ts[first],
        ability=ability[keep],
        ability_se=np.maximum(se[keep], 0.0),
    )


def _ids(values: pd.Series) -> pd.Index:
    """The distinct ids of ``values`` (categorical or not) as str, in order of appearance."""
    uniq = pd.unique(values)
    return pd.Index(np.asarray(uniq, dtype=object)).astype(str)


def _codes(values: pd.Series, ids: pd.Index) -> np.ndarray:
    """Position in ``ids`` of each value's id (categorical or not), without a str per row."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        cat = values.cat
        where = ids.get_indexer(pd.Index(cat.categories).astype(str))
        return np.where(cat.codes.to_numpy() >= 0, where[cat.codes.to_numpy()], -1)
    codes, uniq = pd.factorize(values)
    return ids.get_indexer(pd.Index(uniq).astype(str))[codes]


def _predict_abilities(
    model: Any, r: pd.DataFrame, lcol: str, ids: pd.Index, end: int, code: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(ability, ability_se) ``model.predict`` gives the rows of ``r`` followed by a probe per
    learner of ``ids``, on the whole table (static IRT's cumulative sums span learners, so a
    batch of learners would change the last bits; Elo does not come here:
    :func:`_elo_trajectory`)."""
    table = _with_probes(r, lcol, ids, end, r.iloc[[0]])
    pred = model.predict(table)
    del table
    return np.asarray(pred.ability, dtype=float), np.asarray(pred.ability_se, dtype=float)


def _elo_trajectory(
    model: Any, seq: Any, timestamps: pd.Series, learners: Any, until: Any
) -> AbilityTrajectory:
    """:func:`ability_trajectory` of an Elo ``model`` from its answers already prepared
    (``seq``; ``timestamps``: the answers' times in the table's row order): see
    :class:`_EloEntries`."""
    from learnops.learner_models.elo import Rounds

    entries = _EloEntries.of(seq.order, seq.learner, seq.learner_ids, timestamps, learners, until)
    return entries.replay(model, entries.in_rounds(Rounds.of(seq, keep_rows=True)))


#: Answers per slice when entries are laid out or an index array is permuted in place.
_SLICE = 1 << 20


def _slices(n: int):
    """(lo, hi) of consecutive slices of ``_SLICE`` answers covering ``range(n)``."""
    for lo in range(0, n, _SLICE):
        yield lo, min(lo + _SLICE, n)


@dataclass
class _EloEntries:
    """The layout of an Elo :class:`AbilityTrajectory`, before its estimates.

    Elo's estimate before an answer depends on the learner's earlier answers only (items
    frozen, every step elementwise), and a probe after the learner's last answer reads their
    final θ and information, so one replay of the sorted answers (:meth:`replay`) writes every
    entry in place: the numbers of :func:`ability_trajectory`'s prediction of the table with its
    probes, without the table, the probes or a prediction per answer (28 bytes an entry, plus 4
    an answer for ``dest``)."""

    learners: pd.Index
    code: np.ndarray
    timestamp: np.ndarray
    probes: np.ndarray
    """The entry of each learner's probe (by learner code)."""
    to_code: np.ndarray
    """The learner code of each of the sequences' learner codes."""
    dest: np.ndarray | None
    """The entry of each sorted answer: the first answer of a learner at a time; a later
    answer at the same time goes to a spare slot after the last entry."""
    dest_in_rounds: bool = False
    """``dest`` follows the rounds (:meth:`in_rounds`), not the sorted answers."""

    @classmethod
    def of(
        cls,
        order: np.ndarray,
        learner: np.ndarray,
        learner_ids: np.ndarray,
        timestamps: pd.Series,
        learners: Any,
        until: Any,
    ) -> _EloEntries:
        """The entries of prepared answers (their ``order``, ``learner`` codes and
        ``learner_ids``; ``timestamps`` in the table's row order) with a probe for each of
        their learners and of ``learners`` after the last answer and ``until``: the entries
        :func:`ability_trajectory` keeps."""
        stamps = _ns(timestamps)
        end = int(stamps.max()) if until is None else max(int(stamps.max()), int(_ns([until])[0]))
        end += 1_000_000_000  # one second after the last answer or query
        seen = pd.Index(learner_ids, dtype=object)  # sorted, as str
        extra = pd.Index(list(learners), dtype=object)
        if pd.api.types.infer_dtype(extra, skipna=False) not in ("string", "empty"):
            extra = pd.Index(np.asarray(extra.astype(str), dtype=object))  # ids as text
        new = extra[seen.get_indexer(extra) < 0].unique()  # str ids as they are: no copy
        ids = seen.append(new).sort_values() if len(new) else seen
        to_code = ids.get_indexer(seen).astype(np.int32)
        n, n_learners = order.size, len(ids)
        # an entry at the first answer of each (learner, time) in the sorted answers (learner,
        # time, then row: a decision at that time sees none of them), then the learner's probe;
        # made a slice of answers at a time (no whole array of sorted times or codes)
        first = np.empty(n, dtype=bool)
        per_learner = np.zeros(n_learners, dtype=np.int64)
        for lo, hi in _slices(n):
            at = slice(max(lo - 1, 0), hi)
            ts, lrn = stamps[order[at]], learner[at]
            starts = (ts[1:] != ts[:-1]) | (lrn[1:] != lrn[:-1])
            first[lo:hi] = starts if lo else np.r_[True, starts]
            per_learner += np.bincount(to_code[learner[lo:hi][first[lo:hi]]], minlength=n_learners)
        probes = np.cumsum(per_learner)
        del per_learner
        probes += np.arange(n_learners)  # each learner's probe follows their answers
        n_entries = int(probes[-1]) + 1 if n_learners else 0
        # every answer's entry (of its learner and time): the entries of the answers and the
        # probes before it
        dest = np.cumsum(first, dtype=order.dtype)
        code = np.empty(n_entries, dtype=np.int32)
        timestamp = np.empty(n_entries, dtype=np.int64)
        for lo, hi in _slices(n):
            code_of = to_code[learner[lo:hi]]
            d = dest[lo:hi]
            d += code_of - 1
            code[d] = code_of  # the answers of one entry share learner and time
            timestamp[d] = stamps[order[lo:hi]]
        del stamps
        code[probes] = np.arange(n_learners, dtype=np.int32)
        timestamp[probes] = end
        dest[~first] = n_entries  # a later answer at the same time: the spare slot
        return cls(ids, code, timestamp, probes, to_code, dest)

    def in_rounds(self, rounds: Any) -> Any:
        """Put ``dest`` in the order of ``rounds`` (the answers'
        :class:`~learnops.learner_models.elo.Rounds`, with their rows), in the rows' own array:
        returns the rounds without their rows."""
        import dataclasses

        rows = rounds.rows
        for lo, hi in _slices(rows.size):
            rows[lo:hi] = self.dest[rows[lo:hi]]
        self.dest, self.dest_in_rounds = rows, True
        return dataclasses.replace(rounds, rows=None)

    def replay(self, model: Any, rounds: Any) -> AbilityTrajectory:
        """The trajectory: ``model`` (Elo, fitted) replayed through ``rounds`` (the answers'
        :class:`~learnops.learner_models.elo.Rounds`: with their rows unless :meth:`in_rounds`
        put ``dest`` in their order), each answer's estimate written at its entry, and the
        learner's final estimate at their probe (no answer: θ 0, SE 1)."""
        at = self.dest if self.dest_in_rounds else self.dest[rounds.rows]
        self.dest = None
        n_entries = self.code.size
        ability = np.empty(n_entries + 1)  # a spare last slot
        se = np.empty(n_entries + 1)
        theta, info = model.replay(rounds, theta=ability, se=se, at=at)
        del at
        final = np.zeros(len(self.learners))
        final[self.to_code] = theta
        ability[self.probes] = final
        final[:] = 1.0
        final[self.to_code] = info
        se[self.probes] = 1.0 / np.sqrt(final)
        np.maximum(se, 0.0, out=se)
        return AbilityTrajectory(
            learners=self.learners,
            code=self.code,
            timestamp=self.timestamp,
            ability=ability[:n_entries],
            ability_se=se[:n_entries],
        )


def _with_probes(
    r: pd.DataFrame, lcol: str, ids: pd.Index, end: int, first: pd.DataFrame
) -> pd.DataFrame:
    """``r`` followed by one probe row per learner of ``ids`` at time ``end`` (ns): the item and
    module of ``first`` (the window's first answer), ``correct`` 0 (read by nothing).
    Categorical columns stay categorical (the learner column gains the new ids as
    categories)."""
    probe = first.iloc[[0] * len(ids)].copy()
    if isinstance(r[lcol].dtype, pd.CategoricalDtype):
        cats = r[lcol].cat.categories
        new = pd.Index(ids).astype(object).difference(pd.Index(cats).astype(object))
        cats = pd.Index(cats).append(pd.Index(new, dtype=object))
        r = r.assign(**{lcol: r[lcol].cat.set_categories(cats)})
        probe[lcol] = pd.Categorical(np.asarray(ids, dtype=object), categories=cats)
    else:
        probe[lcol] = np.asarray(ids, dtype=object)
    probe["timestamp"] = pd.Timestamp(end, tz="UTC")
    probe["correct"] = 0
    table = pd.concat([r, probe], ignore_index=True)
    table["timestamp"] = pd.to_datetime(table["timestamp"], utc=True).astype("datetime64[ns, UTC]")
    return table


def ability_source(
    responses: pd.DataFrame, learners: Any, until: Any, params: Params, consume: bool = False
) -> AbilityTrajectory | None:
    """The model ``irt.ability_model`` names, fitted on ``responses``, as an
    :class:`AbilityTrajectory` with probes for ``learners`` up to ``until`` (the decisions'
    learners and latest time): what :func:`supply_abilities` gives each decision, for decisions
    that come in chunks. None with ``irt`` (the logged values are kept) and when there are no
    responses (a warning is logged, as in :func:`supply_abilities`). ``consume``: the caller
    hands ``responses`` over, and Elo drops its columns as soon as it has read them (their
    memory is freed while the model is fitted; the table is left without columns)."""
    name = params.irt.ability_model
    if name == "irt":
        return None
    if responses.empty:
        import logging

        logging.getLogger("learnops.ability").warning(
            "irt.ability_model=%s: no responses in the window, the logged ability/ability_se "
            "are kept",
            name,
        )
        return None
    if name == "elo":
        return _elo_source(responses, learners, until, params, consume)
    model = fit_ability_model(name, responses, params)
    return ability_trajectory(model, responses, learners, until)


def export_abilities(params: Params) -> Any:
    """What the export takes as ``abilities`` (:data:`learnops.data.export.Abilities`): None
    with ``irt.ability_model: irt`` (the logged ability/ability_se are kept), otherwise
    :func:`ability_source` with ``params``, the answers handed over (``consume``)."""
    if params.irt.ability_model == "irt":
        return None
    return lambda responses, learners, until: ability_source(
        responses, learners, until, params, consume=True
    )


def _elo_source(
    responses: pd.DataFrame, learners: Any, until: Any, params: Params, consume: bool = False
) -> AbilityTrajectory:
    """:func:`ability_source` with Elo: the answers prepared once for the tuning, the refit and
    the trajectory, each array dropped once used, and with ``consume`` each column of
    ``responses`` too (the same numbers as fitting and predicting the tables; see
    :class:`_EloEntries`)."""
    from learnops.io import release_free_memory
    from learnops.learner_models.base import prepare
    from learnops.learner_models.elo import Rounds, best, grid_sequences

    cfg = params.learner_models
    valid = _elo_validation(responses, params)  # its Python objects before the sequences
    seq = prepare(responses)
    if consume:  # what the sequences hold: all but the times
        for col in responses.columns.drop("timestamp"):
            del responses[col]
    valid = valid[seq.order]
    grid = grid_sequences(seq, valid, cfg.elo_alpha, cfg.elo_beta)
    del valid
    release_free_memory()  # the grid's working set, before the trajectory's arrays
    rounds = Rounds.of(seq, keep_rows=True)  # what the refit and the replay read of the answers
    order, learner, ids = seq.order, seq.learner, seq.learner_ids
    del seq
    entries = _EloEntries.of(order, learner, ids, responses["timestamp"], learners, until)
    del order, learner
    if consume:
        del responses["timestamp"]
    rounds = entries.in_rounds(rounds)
    model = best(grid).fit_rounds(rounds)
    return entries.replay(model, rounds)


def known_items(model: Any) -> set[str]:
    """The item ids ``model`` (StaticIrt, Elo or BestLr) has parameters for."""
    if getattr(model, "name", None) == "elo":
        return set(model.difficulty.index.astype(str))
    irt = model if getattr(model, "name", None) == "irt" else model.irt
    return set(irt._require().items["item_id"].astype(str))


def holdout_metrics(
    model: Any, responses: pd.DataFrame, params: Params, reference: Any | None = None
) -> dict[str, Any]:
    """Held-out metrics of a fitted ability ``model`` on the temporal split of
    ``learner_models`` (each learner's latest ``holdout_frac`` answers, each predicted from the
    learner's earlier answers): log-loss, AUC, accuracy, RMSE, ECE, and the paired difference of
    log-loss with static IRT (``reference``, default: fitted on the split's training rows) with
    its learner-bootstrap 95% interval (``log_loss_diff_low``/``_high``). Answers to items
    either model does not know are left out."""
    from learnops.data.splits import learner_column
    from learnops.learner_models.base import prepare
    from learnops.learner_models.compare import score, split_temporal
    from learnops.learner_models.irt_static import StaticIrt

    if responses.empty:
        raise LearnopsError("no responses to evaluate the ability model on")
    cfg = params.learner_models
    responses = responses.reset_index(drop=True)
    train, mask = split_temporal(responses, cfg.holdout_frac)
    ref = reference if reference is not None else StaticIrt(params.irt, params.seed).fit(train)
    known = known_items(model) & known_items(ref)
    keep = responses["item_id"].astype(str).isin(known).to_numpy()
    if not (mask & keep).any():
        raise LearnopsError("no held-out answers to items the ability model knows")
    table = responses.loc[keep].reset_index(drop=True)
    seq = prepare(table)
    learners = table[learner_column(table)].astype(str).to_numpy()
    rows = pd.DataFrame({"learner": learners, "correct": seq.unsort(seq.y.astype(float))})
    rows["p_irt"] = ref.predict(table).p
    rows["p_candidate"] = model.predict(table).p
    rows = rows.loc[mask[keep]].reset_index(drop=True)
    metrics, paired = score(rows, ["irt", "candidate"], cfg.bootstrap, cfg.ece_bins, params.seed)
    out: dict[str, Any] = {"model": getattr(model, "name", "?"), "n": len(rows)}
    out["n_learners"] = int(rows["learner"].nunique())
    out.update({k: float(metrics.loc[("candidate", k), "value"]) for k in _METRICS})
    out["log_loss_irt"] = float(metrics.loc[("irt", "log_loss"), "value"])
    d = paired.loc[("candidate", "log_loss")]
    out["log_loss_diff_vs_irt"] = float(d["diff"])
    out["log_loss_diff_low"] = float(d["low"])
    out["log_loss_diff_high"] = float(d["high"])
    return out


_METRICS = ("log_loss", "auc", "accuracy", "rmse", "ece")
