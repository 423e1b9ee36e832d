"""Learner shards and the engines that run the E-step over them, on threads or on Dask.

The learners are split into shards by a hash of their (integer) code, so that each learner's
responses live in one shard. The number of shards depends only on the data size
(``SHARD_RESPONSES`` responses per shard), never on the number of workers or on the engine, and
each shard is computed by the same single-threaded code (``estep.EStep``). The per-shard
statistics (log-likelihood, expected counts, EAP abilities, standard-error accumulators) are
added up in shard order on the driver, which then runs the M-step. So results are bit-identical
for any number of workers and for both engines:

- ``LocalEngine``: a thread pool in this process (numpy, scipy and torch release the GIL in
  the large kernels that do the work; the loops of small torch kernels in the float32 E-step
  and the exact Louis pass run as TorchScript calls that release it once, ``irt.kernels``);
- ``DaskEngine``: the shards are scattered to a Dask cluster (an existing scheduler at
  ``address``, or a ``LocalCluster``), and every E-step is a map over them that returns
  sufficient statistics.

Standard-error accumulators (the Louis information: the packed upper triangle of a (k·I)²
matrix each) are not built per shard: the shards are grouped into at most ``SE_LANES`` fixed
lanes, each with one accumulator, merged in lane order.
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import numpy as np

from learnops.irt import estep
from learnops.irt.estep import EStep, _row_block, _torch_ok, design_matrix

if TYPE_CHECKING:
    import scipy.sparse as sp

    from learnops.irt.data import Encoded
    from learnops.irt.params import Params

#: Responses per learner shard (the shard count is ceil(responses / this)).
SHARD_RESPONSES = 500_000
#: Shards are grouped into at most this many lanes for the standard-error accumulation (one
#: (k·I)² accumulator per lane, so this bounds the memory; and the parallelism of that pass).
SE_LANES = 4
ENGINES = ("local", "dask")


def default_workers() -> int:
    """All cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def n_shards_for(n_learners: int, n_responses: int) -> int:
    """Number of learner shards: one per ``SHARD_RESPONSES`` responses (at least 1)."""
    return int(max(1, min(n_learners, -(-n_responses // SHARD_RESPONSES))))


def shard_of(learners: np.ndarray, n_shards: int) -> np.ndarray:
    """Shard of each learner (integer learner codes): a fixed 64-bit mix (splitmix64) of the
    code modulo the shard count, so shards are balanced and do not follow the id order."""
    if n_shards == 1:
        return np.zeros(len(learners), dtype=np.int64)
    z = np.asarray(learners, dtype=np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    for shift, mult in ((30, 0xBF58476D1CE4E5B9), (27, 0x94D049BB133111EB)):
        z ^= z >> np.uint64(shift)
        z *= np.uint64(mult)
    z ^= z >> np.uint64(31)
    z %= np.uint64(n_shards)
    return z.view(np.int64)


def _shard_rows(which: np.ndarray, n_shards: int) -> list[np.ndarray]:
    """The rows (increasing) of each non-empty shard, given each row's shard ``which``."""
    order = np.argsort(which, kind="stable")
    ends = np.cumsum(np.bincount(which, minlength=n_shards))
    return [g for g in np.split(order, ends[:-1]) if len(g)]


@dataclass
class Shard:
    """The learners of one shard (global indices, increasing) and their E-step."""

    rows: np.ndarray
    estep: EStep


@dataclass
class ShardOut:
    """What one shard's E-step returns: sufficient statistics for the driver."""

    loglik: float
    r: np.ndarray
    w: np.ndarray
    abilities: np.ndarray | None


def _build_shard(
    x: sp.csr_matrix,
    rows: np.ndarray,
    theta: np.ndarray,
    logw: np.ndarray,
    chunk_cells: int,
    backend: str,
    cache_bytes: int,
) -> Shard:
    if len(rows) == x.shape[0]:
        xs = x
    elif len(rows) and rows[-1] - rows[0] + 1 == len(rows):
        xs = _row_block(x, int(rows[0]), int(rows[-1]) + 1)
    else:
        xs = x[rows]
    return Shard(rows, EStep(xs, theta, logw, chunk_cells, backend, dense_cache_bytes=cache_bytes))


def lane_run(
    shards: Sequence[Shard], p: Params, fast: bool, abilities: bool, acc: Any
) -> tuple[list[ShardOut], Any]:
    """Run the E-step of consecutive shards on one thread (``acc``, if any, accumulates over
    all of them); returns their statistics in order and the accumulator."""
    _pin_one_thread()
    outs = []
    for sh in shards:
        ll, r, w, ab = sh.estep.run(p, abilities=abilities, callback=acc, fast=fast)
        outs.append(ShardOut(ll, r, w, ab))
    return outs, acc


def _pin_one_thread() -> None:
    """One BLAS / torch thread in this worker (Dask workers run one task per thread)."""
    import torch

    if torch.get_num_threads() != 1:
        torch.set_num_threads(1)


#: glibc malloc settings while a fit runs (mallopt parameters → bytes): buffers under 32 MB
#: (the E-step's per-chunk posteriors) come from the heaps, not from fresh mmaps; freed heap
#: tops (up to 256 MB) are kept for the next chunk instead of returned to the system and
#: touched again; a worker thread's extra heap is kept, not deleted whenever it empties (the
#: 64 MB pad). With glibc's defaults, two worker threads made 2-5x the page faults of one (a
#: thread arena's heaps are created and deleted per chunk), which cost seconds of system time
#: per fit on a virtual machine. After the fit: the trim threshold and pad glibc would reach on
#: its own (64 MB, 128 kB), and ``malloc_trim`` returns what the fit kept.
FIT_MALLOC = {-3: 32 << 20, -1: 256 << 20, -2: 64 << 20}  # MMAP_THRESHOLD, TRIM_THRESHOLD, TOP_PAD
AFTER_FIT_MALLOC = {-1: 64 << 20, -2: 128 << 10}
_heap_lock = threading.Lock()
_heap_depth = [0]
_P = ParamSpec("_P")
_R = TypeVar("_R")


@contextlib.contextmanager
def fit_heap(lib: Any = None) -> Iterator[None]:
    """glibc's heap kept for reuse while a fit runs (``FIT_MALLOC``), released after it
    (``AFTER_FIT_MALLOC`` and ``malloc_trim``); nested uses act once, elsewhere a no-op."""
    from learnops.io import glibc

    lib = lib or glibc()
    with _heap_lock:
        _heap_depth[0] += 1
        if lib is not None and _heap_depth[0] == 1:
            for param, value in FIT_MALLOC.items():
                lib.mallopt(param, value)
    try:
        yield
    finally:
        with _heap_lock:
            _heap_depth[0] -= 1
            if lib is not None and _heap_depth[0] == 0:
                for param, value in AFTER_FIT_MALLOC.items():
                    lib.mallopt(param, value)
                lib.malloc_trim(0)


def keeps_heap(fn: Callable[_P, _R]) -> Callable[_P, _R]:
    """Decorator: ``fn`` (a fit) runs inside ``fit_heap()``."""

    @functools.wraps(fn)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        with fit_heap():
            return fn(*args, **kwargs)

    return wrapper


_controller: list[Any] = []  # the ThreadpoolController, made once torch and scipy are loaded


@contextlib.contextmanager
def one_thread_each() -> Iterator[None]:
    """Single-threaded BLAS and torch kernels while shards run (on however many workers), so
    that each shard's arithmetic is the same whatever the number of workers."""
    import torch

    if not _controller:  # one scan of the loaded libraries (threadpool_limits scans per call)
        import scipy.linalg  # noqa: F401  (scipy's own OpenBLAS, loaded before the scan)
        from threadpoolctl import ThreadpoolController

        _controller.append(ThreadpoolController())
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with _controller[0].limit(limits=1):
            yield
    finally:
        torch.set_num_threads(threads)


class LocalEngine:
    """Shards held in this process, run on a pool of ``workers`` threads (started on first
    use and kept until ``close``: the threads, their heaps and caches stay warm from one
    E-step to the next)."""

    name = "local"

    def __init__(self, workers: int | None = None) -> None:
        self.workers = max(1, workers or default_workers())
        self._pool: Any = None

    def put(self, shards: list[Shard]) -> list[Any]:
        """Handles of the shards for ``run`` (the shards themselves)."""
        return shards

    def build(self, fn: Callable[..., Shard], args: list[tuple]) -> list[Shard]:
        """``fn(*a)`` for each ``a`` (in parallel), in order."""
        return self._map(lambda a: fn(*a), args)

    def run(self, lanes: list[list[Any]], *args: Any, accs: list[Any]) -> Iterator[Any]:
        """``lane_run(lane, *args, acc)`` for every lane, results in lane order, each yielded
        as soon as it and the lanes before it are done (the caller adds them up while the
        later lanes run)."""
        return self._imap(
            lambda la: lane_run(la[0], *args, la[1]), list(zip(lanes, accs, strict=True))
        )

    def map_local(self, fn: Callable[[Any], Any], items: list[Any]) -> list[Any]:
        """``[fn(x) for x in items]`` on the worker threads (the M-step's item blocks)."""
        return self._map(fn, items)

    def _map(self, fn: Callable[[Any], Any], items: list[Any]) -> list[Any]:
        return list(self._imap(fn, items))

    def _imap(self, fn: Callable[[Any], Any], items: list[Any]) -> Iterator[Any]:
        """``fn(x)`` for each ``x``, yielded in order; single-threaded kernels until every
        call has ended (even when the caller stops early)."""
        with one_thread_each():
            if self.workers == 1 or len(items) < 2:
                for it in items:
                    yield fn(it)
                return
            if self._pool is None:
                from concurrent.futures import ThreadPoolExecutor

                self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="learnops-irt")
            futures = [self._pool.submit(fn, it) for it in items]
            try:
                for f in futures:
                    yield f.result()
            finally:  # on an error or an abandoned iteration: no call left running
                from concurrent.futures import wait

                for f in futures:
                    f.cancel()
                wait(futures)

    def close(self) -> None:
        """Stop the threads."""
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None


class DaskEngine:
    """Shards scattered to a Dask cluster: the scheduler at ``address``, or a new
    ``LocalCluster`` of ``workers`` single-threaded workers (processes unless
    ``processes=False``), closed with ``close``."""

    name = "dask"

    def __init__(
        self, address: str | None = None, workers: int | None = None, processes: bool = True
    ) -> None:
        from learnops.errors import LearnopsError

        try:
            from dask.distributed import Client, LocalCluster
        except ImportError as exc:  # pragma: no cover - a dependency
            raise LearnopsError(f"the dask engine needs dask[distributed]: {exc}") from None
        self.workers = max(1, workers or default_workers())
        self._cluster = None
        try:
            if address:
                self.client = Client(address, timeout=10)
            else:
                where = {"host": "127.0.0.1"} if processes else {}  # in-process: no sockets
                self._cluster = LocalCluster(
                    n_workers=self.workers,
                    threads_per_worker=1,
                    processes=processes,
                    dashboard_address=None,
                    **where,
                )
                self.client = Client(self._cluster)
        except OSError as exc:
            raise LearnopsError(f"cannot reach the Dask scheduler {address}: {exc}") from None

    def map_local(self, fn: Callable[[Any], Any], items: list[Any]) -> list[Any]:
        """``[fn(x) for x in items]`` on the driver (the M-step runs there, in one block)."""
        return [fn(x) for x in items]

    def put(self, shards: list[Shard]) -> list[Any]:
        """Scatter the shards to the workers (one future each), spread evenly."""
        return self.client.scatter(shards, broadcast=False, hash=False)

    def build(self, fn: Callable[..., Shard], args: list[tuple]) -> list[Shard]:
        """Built on the driver (the sparse design is there); ``put`` then ships them."""
        return [fn(*a) for a in args]

    def run(self, lanes: list[list[Any]], *args: Any, accs: list[Any]) -> list[Any]:
        """One task per lane (run where its shards are), gathered in lane order."""
        futures = [
            self.client.submit(lane_run, lane, *args, acc, pure=False)
            for lane, acc in zip(lanes, accs, strict=True)
        ]
        return self.client.gather(futures)

    def close(self) -> None:
        """Close the client (and the LocalCluster it started)."""
        self.client.close()
        if self._cluster is not None:
            self._cluster.close()


def make_engine(
    engine: str = "local", workers: int | None = None, address: str | None = None
) -> LocalEngine | DaskEngine:
    """An engine by name (``local`` or ``dask``)."""
    from learnops.errors import LearnopsError

    if engine == "local":
        return LocalEngine(workers)
    if engine == "dask":
        return DaskEngine(address, workers)
    raise LearnopsError(f"IRT engine must be one of {', '.join(ENGINES)}, not {engine!r}")


class ShardedEStep:
    """The E-step of ``estep.EStep`` over learner shards, run by an engine; same ``run``
    interface (log-likelihood, expected counts, EAP abilities; ``callback`` is an accumulator
    with ``fresh()`` and ``merge()``)."""

    def __init__(
        self,
        enc: Encoded,
        theta: np.ndarray,
        logw: np.ndarray,
        chunk_cells: int = 1 << 21,
        backend: str = "auto",
        engine: LocalEngine | DaskEngine | None = None,
        n_shards: int | None = None,
    ) -> None:
        self.engine = engine or LocalEngine()
        self.workers = self.engine.workers
        self.theta, self.logw = theta, logw
        self.n_items, self.n_learners = enc.n_items, enc.n_learners
        nnz = enc.n_responses  # one entry per response in the design matrix
        self.fast_ok = nnz >= estep.FAST_MIN_RESPONSES
        dense_overall = nnz >= estep.DENSE_FRACTION * enc.n_learners * 2 * enc.n_items
        if backend == "auto":
            backend = (
                "torch"
                if not dense_overall and nnz >= estep.TORCH_MIN_RESPONSES and _torch_ok()
                else "numpy"
            )
        n_shards = n_shards or n_shards_for(enc.n_learners, enc.n_responses)
        # torch chunks read the pattern alone: int8 ones, not 8 bytes a response; the design
        # matrix and the shards' rows on the engine's threads
        x, groups = self.engine.map_local(
            lambda make: make(),
            [
                lambda: design_matrix(enc, np.int8 if backend == "torch" else np.float64),
                lambda: _shard_rows(shard_of(np.arange(enc.n_learners), n_shards), n_shards),
            ],
        )
        cache = estep.DENSE_CACHE_BYTES // len(groups)
        args = [(x, g, theta, logw, chunk_cells, backend, cache) for g in groups]
        shards = self.engine.build(_build_shard, args)
        del x
        self.rows = [s.rows for s in shards]
        self.backend = (
            "torch"
            if any(c.torch_idx is not None for s in shards for c in s.estep.chunks)
            else "numpy"
        )
        self.handles = self.engine.put(shards)

    @property
    def n_shards(self) -> int:
        return len(self.rows)

    def run(
        self, p: Params, *, abilities: bool = False, callback: Any = None, fast: bool = False
    ) -> tuple[float, np.ndarray, np.ndarray, np.ndarray | None]:
        """Return (marginal loglik, r counts, wrong counts, [eap, sd] or None), summed over the
        shards in shard order; ``callback`` gets the merged accumulators of the lanes."""
        n = self.n_shards
        if callback is None:
            bounds = list(range(n + 1))
        else:
            lanes = min(n, SE_LANES)
            bounds = [i * n // lanes for i in range(lanes + 1)]
        lanes_h = [self.handles[lo:hi] for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)]
        accs = [None if callback is None else callback.fresh() for _ in lanes_h]
        ab = np.empty((self.n_learners, 2)) if abilities else None
        sums: list[Any] = []  # loglik, r, w: added in shard order as the lanes end
        rows = iter(self.rows)
        for lane_outs, acc in self.engine.run(lanes_h, p, fast, abilities, accs=accs):
            for o in lane_outs:
                if not sums:
                    sums = [o.loglik, o.r.copy(), o.w.copy()]
                else:
                    sums[0] += o.loglik
                    sums[1] += o.r
                    sums[2] += o.w
                if ab is not None:
                    ab[next(rows)] = o.abilities
            if callback is not None:
                callback.merge(acc)
        loglik, r, w = sums
        return loglik, r, w, ab
