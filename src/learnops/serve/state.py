"""What the running API holds: the served model, the API-triggered retrain and the app's state.

``ServeState`` is built once by ``create_app`` and stored on ``app.state.serve``; the routes
reach it through the ``get_state`` dependency (learnops.serve.deps).
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from learnops.config import Params
from learnops.data.store import EventStore, utcnow
from learnops.lifecycle.registry import Registry, VersionInfo
from learnops.serve.auth import Tokens
from learnops.serve.decision_log import DecisionLog, journal_dir
from learnops.serve.drift import DriftWatch
from learnops.serve.fallback import FallbackTeacher, RuleTeacher
from learnops.serve.metrics import ServeMetrics

__all__ = [
    "CHECK_INTERVAL_S",
    "ExperimentCache",
    "ModelHolder",
    "ModelWatch",
    "RetrainState",
    "ServeState",
    "default_retrain",
]

log = logging.getLogger("learnops.serve")

#: How often (seconds) the production version is looked up in the registry at most.
CHECK_INTERVAL_S = 1.0


class _BackgroundLookup:
    """A value looked up at most once per ``interval`` seconds, off the request path and never
    concurrently: :meth:`_due` starts the lookup (:meth:`_refresh`) in a daemon thread when the
    interval has passed; requests meanwhile use the last answer. The production models
    (:class:`ModelWatch`) and the running experiment (:class:`ExperimentCache`) are looked up
    this way."""

    _thread_name = "lookup"

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._lock = threading.Lock()
        self._checked = -math.inf
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None

    def start_polling(self) -> None:
        """Look up the value every ``interval`` seconds even without requests, so that a worker
        that was idle serves a change (a deploy, an experiment started or stopped through
        another worker, replica or the CLI) from its first request on."""
        if self._poller is not None:
            return

        def poll() -> None:
            while not self._stop.wait(max(self.interval / 2, 0.05)):
                self._due()

        self._poller = threading.Thread(target=poll, name=f"{self._thread_name}-poll", daemon=True)
        self._poller.start()

    def stop_polling(self) -> None:
        """Stop the thread of :meth:`start_polling`."""
        self._stop.set()
        if self._poller is not None:
            self._poller.join(timeout=2)

    def _due(self) -> None:
        if time.monotonic() - self._checked >= self.interval and self._lock.acquire(False):
            self._checked = time.monotonic()
            threading.Thread(
                target=self._refresh_locked, name=self._thread_name, daemon=True
            ).start()

    def _refresh_locked(self) -> None:
        try:
            self._refresh()
        finally:
            self._lock.release()

    def _refresh(self) -> None:
        raise NotImplementedError


class ModelHolder:
    """The served model of ``model_type`` (the MLP; ``learner``: the ability model of
    ``GET /learners/{id}/ability``): loaded once, swapped when the registry's production version
    changes. Made by :meth:`ModelWatch.holder`, which keeps it current: requests use the loaded
    model and never wait for the registry. A version whose artifacts fail to load is not
    retried.
    """

    def __init__(
        self,
        watch: ModelWatch,
        model_type: str = "mlp",
        loader: Callable[[str], Any] | None = None,
        on_swap: Callable[[], None] | None = None,
    ) -> None:
        self.watch = watch
        self.model_type = model_type
        self._loader = loader
        self._on_swap = on_swap
        self._state: tuple[Any, str | None] = (None, None)
        self._key: tuple | None = None
        self._failed: tuple | None = None
        #: When (``time.time()``) the served version was loaded (None: nothing served).
        self.loaded_at: float | None = None

    @property
    def version(self) -> str | None:
        """The version being served (None: no model, every decision goes to the fallback)."""
        return self._state[1]

    def current(self) -> tuple[Any, str | None]:
        """(model, version) at once; when the check interval has passed, the watch looks up
        the production versions (and loads a changed one) in the background for the following
        requests."""
        self.watch._due()
        return self._state

    def refresh(self) -> tuple[Any, str | None]:
        """Look up the production versions now (every holder of the watch) and load this
        holder's if it changed."""
        self.watch.refresh()
        return self._state

    def _load(self, path: str) -> Any:
        if self._loader is not None:
            return self._loader(path)
        if self.model_type == "learner":
            from learnops.learner_models.artifact import load as load_learner

            return load_learner(path)
        from learnops.mlp import load

        return load(path)

    def _apply(self, prod: VersionInfo | None) -> None:
        """Serve ``prod`` (the production version just looked up): load it if it changed,
        serve nothing when there is none."""
        if prod is None:
            if self._key is not None:
                tail = ": serving the fallback only" if self.model_type == "mlp" else ""
                log.info("no production %s version%s", self.model_type, tail)
            self._state, self._key = (None, None), None
            self.loaded_at = None
            return
        key = (prod.version, prod.artifact_path, prod.deployed_at)
        if key == self._key or key == self._failed:
            return
        try:
            model = self._load(str(prod.artifact_path))
        except Exception as exc:
            log.error(
                "cannot load %s %s from %s: %s",
                self.model_type,
                prod.version,
                prod.artifact_path,
                exc,
            )
            self._failed = key
            return
        self._state, self._key = (model, prod.version), key
        self.loaded_at = time.time()
        log.info("serving %s %s", self.model_type, prod.version)
        if self._on_swap is not None:
            self._on_swap()


class ModelWatch(_BackgroundLookup):
    """The served models (:class:`ModelHolder`, one per model type), kept current by one
    registry read per ``interval`` seconds for all of them, off the request path and never
    concurrently (a failed read keeps every model served)."""

    _thread_name = "model-refresh"

    def __init__(self, registry: Registry, interval: float = CHECK_INTERVAL_S) -> None:
        super().__init__(interval)
        self.registry = registry
        self.holders: dict[str, ModelHolder] = {}

    def holder(
        self,
        model_type: str = "mlp",
        loader: Callable[[str], Any] | None = None,
        on_swap: Callable[[], None] | None = None,
    ) -> ModelHolder:
        """A new holder of ``model_type`` kept current by this watch (``loader``: how a
        version's artifact directory is loaded; ``on_swap``: called after each swap)."""
        if model_type in self.holders:
            raise ValueError(f"the watch already holds a {model_type} model")
        h = ModelHolder(self, model_type, loader=loader, on_swap=on_swap)
        self.holders[model_type] = h
        return h

    def refresh(self) -> None:
        """Look up the production versions now and swap every holder whose version changed."""
        with self._lock:
            self._refresh()

    def _refresh(self) -> None:
        self._checked = time.monotonic()
        try:
            prods = self.registry.productions(list(self.holders))
        except Exception as exc:  # a locked or unreachable database: keep serving
            log.warning("registry lookup failed: %s", exc)
            return
        for model_type, h in self.holders.items():
            h._apply(prods[model_type])


class ExperimentCache(_BackgroundLookup):
    """The running experiment (or None), looked up in the store at most once per ``interval``
    seconds in a background thread, like the models (:class:`ModelWatch`); ``refresh()`` looks
    it up now (after a start or stop through this server). A failed lookup keeps the last
    answer."""

    _thread_name = "experiment-refresh"

    def __init__(self, store: EventStore, interval: float = CHECK_INTERVAL_S) -> None:
        super().__init__(interval)
        self.store = store
        self._current: Any = None

    def current(self) -> Any:
        """The running ``learnops.ab.experiments.Experiment`` as last looked up, or None."""
        self._due()
        return self._current

    def refresh(self) -> Any:
        """Look up the running experiment now."""
        with self._lock:
            self._refresh()
        return self._current

    def _refresh(self) -> None:
        from learnops.ab.experiments import running_experiment

        self._checked = time.monotonic()
        try:
            found = running_experiment(self.store)
        except Exception as exc:  # a locked or unreachable database: keep the last answer
            log.warning("experiment lookup failed: %s", exc)
            return
        old = self._current
        if (old and old.name) != (found and found.name):
            log.info(
                "experiment %s", f"{found.name} running" if found else f"{old.name} no longer runs"
            )
        self._current = found


@dataclass
class RetrainState:
    """The API-triggered retrain: whether one runs, its thread and the last run's record."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    running: bool = False
    last_run: dict[str, Any] | None = None
    thread: threading.Thread | None = None


def default_retrain(params: Params, **kwargs: Any) -> Any:
    """``learnops.lifecycle.retrain.retrain`` (imported at call time: it is heavy)."""
    from learnops.lifecycle.retrain import retrain

    return retrain(params, **kwargs)


def _child_seed(seed: int | None) -> str | None:
    """A seed for the teacher's draws, independent of the exploration stream's (string seeds
    of ``random.Random`` are hashed with SHA-512: stable across processes)."""
    return None if seed is None else f"teacher-{seed}"


@dataclass
class ServeState:
    """Everything the routes share: store, registry, served model, fallback, metrics, tokens."""

    params: Params
    store: EventStore
    registry: Registry
    #: keeps ``holder`` and ``learners`` current (one registry read per check interval)
    models: ModelWatch
    holder: ModelHolder
    metrics: ServeMetrics
    decision_log: DecisionLog
    tokens: Tokens
    teacher: FallbackTeacher
    threshold: float
    experiments: ExperimentCache
    epsilon: float = 0.0
    #: The production ``learner`` model (``GET /learners/{id}/ability``), loaded like the MLP.
    learners: ModelHolder | None = None
    drift: DriftWatch | None = None
    rng: random.Random = field(default_factory=random.Random)
    run_retrain: Callable[..., Any] = default_retrain
    retrain: RetrainState = field(default_factory=RetrainState)
    own_store: bool = False
    _recovery: threading.Timer | None = field(default=None, repr=False)
    _closed: bool = field(default=False, repr=False)

    @property
    def teacher_name(self) -> str:
        """The fallback's name, logged as the model_version of its decisions."""
        return str(getattr(self.teacher, "name", type(self.teacher).__name__))

    @classmethod
    def build(
        cls,
        params: Params,
        *,
        fallback: FallbackTeacher | None = None,
        tokens: Tokens | None = None,
        store: EventStore | None = None,
        retrain_fn: Callable[..., Any] | None = None,
        check_interval: float = CHECK_INTERVAL_S,
    ) -> ServeState:
        """The state over the event store and registry of ``params``, the model loaded."""
        tokens = tokens if tokens is not None else Tokens.from_env()  # bad env: fail first
        own_store = store is None
        store = store if store is not None else EventStore(params.db_url)
        try:
            store.claim_salt()  # workers and replicas hash learner ids with one secret
        except Exception:
            if own_store:
                store.dispose()
            raise
        registry = Registry(store, params.path(params.paths.models_dir) / "registry")
        metrics = ServeMetrics()
        models = ModelWatch(registry, interval=check_interval)
        state = cls(
            params=params,
            store=store,
            registry=registry,
            models=models,
            holder=models.holder("mlp", on_swap=metrics.observe_reload),
            metrics=metrics,
            decision_log=DecisionLog(
                store,
                journal_dir(store.url, params.root),
                on_error=lambda n: metrics.observe_error("store", n),
            ),
            tokens=tokens,
            teacher=fallback
            if fallback is not None
            else RuleTeacher(seed=_child_seed(params.serve.seed)),
            threshold=float(params.mlp.confidence_threshold),
            experiments=ExperimentCache(store, interval=check_interval),
            epsilon=float(params.serve.epsilon),
            learners=models.holder("learner"),
            # exploration draws, not security; seeded only when params.serve.seed is set
            rng=random.Random(params.serve.seed),  # nosec B311
            run_retrain=retrain_fn or default_retrain,
            own_store=own_store,
        )
        state.recover_interrupted()
        state.models.refresh()
        state.experiments.refresh()
        state.drift = DriftWatch(params)
        state.drift.start()
        return state

    def recover_interrupted(self) -> None:
        """Mark versions left ``training`` by a dead retrain ``failed`` ("interrupted"), at
        start; versions whose lease is still valid are checked again when it ends (a retrain
        killed just before this start), and so on while any version is training."""
        self._recovery = None
        if self._closed:
            return
        try:
            self.registry.recover_interrupted()
            end = self.registry.next_lease_end()
        except Exception as exc:  # a locked or unreachable database: serve anyway
            log.warning("interrupted retrains not checked: %s", exc)
            return
        if end is None:
            return
        remaining = (end - utcnow()).total_seconds()
        # an ended lease left alone (its retrain holds the lock): look again a heartbeat later
        delay = remaining + 0.5 if remaining > 0 else self.registry.heartbeat_s
        timer = threading.Timer(delay, self.recover_interrupted)
        timer.daemon = True
        timer.name = "lease-check"
        self._recovery = timer
        timer.start()

    def start_polling(self) -> None:
        """Look up the production version and the running experiment every check interval, also
        without requests (the app's startup: other workers, replicas or the CLI may deploy or
        start an experiment); :meth:`close` stops it."""
        if not self._closed:
            self.models.start_polling()
            self.experiments.start_polling()

    def is_training(self) -> bool:
        """True while an API retrain runs or another process holds the registry's lock."""
        return self.retrain.running or self.registry.is_training()

    def close(self) -> None:
        """Wait briefly for a running retrain, store the queued decisions, release the store."""
        self._closed = True
        self.models.stop_polling()
        self.experiments.stop_polling()
        if self.drift is not None:
            self.drift.close()
        if self._recovery is not None:
            self._recovery.cancel()
        thread = self.retrain.thread
        if thread is not None:
            thread.join(timeout=5)
        self.decision_log.close()
        if self.own_store:
            self.store.dispose()
