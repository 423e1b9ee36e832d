"""The FastAPI application: /decide, /outcomes, the admin MLOps API, /metrics and /health."""

from __future__ import annotations

import importlib
import logging
import math
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import asdict, is_dataclass
from datetime import datetime
from typing import Any

from fastapi import Body, Depends, FastAPI, HTTPException, Query
from fastapi.responses import PlainTextResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import text

from learnops.config import Params
from learnops.contracts import ACTIONS
from learnops.data.store import EventStore, utcnow
from learnops.errors import LearnopsError, NoTrainingData, TrainingInProgress
from learnops.lifecycle.registry import MODEL_TYPES, Registry, VersionInfo
from learnops.serve.auth import Tokens
from learnops.serve.decision_log import DecisionLog, decision_row
from learnops.serve.fallback import FallbackTeacher, RuleTeacher
from learnops.serve.metrics import ServeMetrics
from learnops.serve.schemas import DecideRequest, DecideResponse, OutcomeRequest, RetrainRequest

__all__ = ["ModelHolder", "create_app", "run"]

log = logging.getLogger("learnops.serve")

#: How often (seconds) the production version is looked up in the registry at most.
CHECK_INTERVAL_S = 1.0


class ModelHolder:
    """The served MLP: loaded once, swapped when the registry's production version changes.

    The registry is asked at most once per ``interval`` seconds, off the request path and never
    concurrently; requests meanwhile use the loaded model. A version whose artifacts fail to
    load is not retried.
    """

    def __init__(
        self,
        registry: Registry,
        interval: float = CHECK_INTERVAL_S,
        loader: Callable[[str], Any] | None = None,
        on_swap: Callable[[], None] | None = None,
    ) -> None:
        self.registry = registry
        self.interval = interval
        self._loader = loader
        self._on_swap = on_swap
        self._lock = threading.Lock()
        self._state: tuple[Any, str | None] = (None, None)
        self._key: tuple | None = None
        self._failed: tuple | None = None
        self._checked = -math.inf

    @property
    def version(self) -> str | None:
        """The version being served (None: no model, every decision goes to the fallback)."""
        return self._state[1]

    def current(self) -> tuple[Any, str | None]:
        """(model, version) at once; when the check interval has passed, a background thread
        looks up the production version (and loads it) for the following requests."""
        if time.monotonic() - self._checked >= self.interval and self._lock.acquire(False):
            self._checked = time.monotonic()
            threading.Thread(target=self._refresh_locked, name="model-refresh", daemon=True).start()
        return self._state

    def _refresh_locked(self) -> None:
        try:
            self._refresh()
        finally:
            self._lock.release()

    def refresh(self) -> tuple[Any, str | None]:
        """Look up the production version now and load it if it changed."""
        with self._lock:
            self._refresh()
        return self._state

    def _load(self, path: str) -> Any:
        if self._loader is not None:
            return self._loader(path)
        from learnops.mlp import load

        return load(path)

    def _refresh(self) -> None:
        self._checked = time.monotonic()
        try:
            prod = self.registry.production("mlp")
        except Exception as exc:  # a locked or unreachable database: keep serving
            log.warning("registry lookup failed: %s", exc)
            return
        if prod is None:
            if self._key is not None:
                log.info("no production mlp version: serving the fallback only")
            self._state, self._key = (None, None), None
            return
        key = (prod.version, prod.artifact_path, prod.deployed_at)
        if key == self._key or key == self._failed:
            return
        try:
            model = self._load(str(prod.artifact_path))
        except Exception as exc:
            log.error("cannot load mlp %s from %s: %s", prod.version, prod.artifact_path, exc)
            self._failed = key
            return
        self._state, self._key = (model, prod.version), key
        log.info("serving mlp %s", prod.version)
        if self._on_swap is not None:
            self._on_swap()


class _RetrainState:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running = False
        self.last_run: dict[str, Any] | None = None
        self.thread: threading.Thread | None = None


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, VersionInfo):
        return obj.as_dict()
    if hasattr(obj, "as_dict"):
        return obj.as_dict()
    if is_dataclass(obj) and not isinstance(obj, type):
        return {k: _jsonable(v) for k, v in asdict(obj).items()}
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, datetime):
        return obj.isoformat()
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    return str(obj)


def _default_retrain(params: Params, **kwargs: Any) -> Any:
    return importlib.import_module("learnops.lifecycle.retrain").retrain(params, **kwargs)


def create_app(
    params: Params,
    *,
    fallback: FallbackTeacher | None = None,
    tokens: Tokens | None = None,
    store: EventStore | None = None,
    retrain_fn: Callable[..., Any] | None = None,
    check_interval: float = CHECK_INTERVAL_S,
) -> Any:
    """The HTTP API over the event store and registry of ``params``.

    ``fallback`` decides when the model is absent or below ``params.mlp.confidence_threshold``
    (default: the simulator's rule policy); ``tokens`` default to the env hashes
    (``LEARNOPS_ADMIN_TOKENS``, ``LEARNOPS_TOKENS``); ``retrain_fn`` defaults to
    ``learnops.lifecycle.retrain.retrain``.
    """
    tokens = tokens if tokens is not None else Tokens.from_env()
    teacher: FallbackTeacher = fallback if fallback is not None else RuleTeacher()
    teacher_name = str(getattr(teacher, "name", type(teacher).__name__))
    own_store = store is None
    store = store if store is not None else EventStore(params.db_url)
    registry = Registry(store, params.path(params.paths.models_dir) / "registry")
    metrics = ServeMetrics()
    holder = ModelHolder(registry, interval=check_interval, on_swap=metrics.observe_reload)
    threshold = float(params.mlp.confidence_threshold)
    retrain_state = _RetrainState()
    run_retrain = retrain_fn or _default_retrain
    decision_log = DecisionLog(store, on_error=lambda n: metrics.observe_error("store", n))
    holder.refresh()

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> Iterator[None]:
        yield
        thread = retrain_state.thread
        if thread is not None:
            thread.join(timeout=5)
        decision_log.close()
        if own_store:
            store.dispose()

    app = FastAPI(
        title="learnops",
        summary="Teaching decisions (MLP with a fallback teacher) and the MLOps admin API.",
        lifespan=lifespan,
    )
    app.state.params = params
    app.state.store = store
    app.state.registry = registry
    app.state.holder = holder
    app.state.metrics = metrics
    app.state.retrain = retrain_state
    app.state.decision_log = decision_log

    bearer = HTTPBearer(auto_error=False)

    def _role(creds: HTTPAuthorizationCredentials | None) -> str | None:
        return tokens.role(creds.credentials if creds is not None else None)

    async def require_admin(creds: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
        role = _role(creds)
        if role is None:
            raise HTTPException(
                401, "missing or invalid token", headers={"WWW-Authenticate": "Bearer"}
            )
        if role != "admin":
            raise HTTPException(403, "admin token required")

    async def require_client(creds: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
        if tokens.clients_need_token and _role(creds) is None:
            raise HTTPException(
                401, "missing or invalid token", headers={"WWW-Authenticate": "Bearer"}
            )

    # -- decisions -----------------------------------------------------------------------------
    @app.post("/decide", response_model=DecideResponse, dependencies=[Depends(require_client)])
    async def decide(body: DecideRequest) -> dict[str, Any]:
        """Decide the next teaching action and log the decision."""
        t0 = time.perf_counter()
        features = body.features()
        model, version = holder.current()
        pred = None
        if model is not None:
            from learnops.mlp import predict

            pred = predict(model, features)
        low = pred is not None and pred.confidence < threshold
        out: dict[str, Any]
        if pred is not None and not low:
            out = _ml(pred, version)
        else:
            try:
                action, probs = teacher.decide(features)
                if action not in ACTIONS:
                    raise LearnopsError(f"fallback returned unknown action {action!r}")
                probs = {a: float(probs[a]) for a in ACTIONS if a in probs}
            except Exception as exc:
                metrics.observe_error("fallback")
                log.error("fallback teacher failed: %s", exc)
                if pred is None:
                    raise HTTPException(503, "no model and the fallback teacher failed") from None
                out = _ml(pred, version)  # degrade to the unsure model rather than fail
            else:
                out = {
                    "action": action,
                    "confidence": float(probs.get(action, max(probs.values(), default=1.0))),
                    "decided_by": "llm",
                    "model_version": teacher_name,
                    "probabilities": probs,
                    "difficulty_delta": None,
                    "propensity": None,
                }
        out["latency_ms"] = (time.perf_counter() - t0) * 1000.0
        out["decision_id"] = uuid.uuid4().hex
        decision_log.submit(
            decision_row(
                body.learner_id,
                features,
                {**out, "ab_test": body.ab_test, "ab_group": body.ab_group},
            )
        )
        metrics.observe_decision(out["decided_by"], out["action"], out["latency_ms"], low)
        out.pop("propensity")
        return out

    def _ml(pred: Any, version: str | None) -> dict[str, Any]:
        return {
            "action": pred.action,
            "confidence": pred.confidence,
            "decided_by": "ml",
            "model_version": version,
            "probabilities": dict(pred.probabilities),
            "difficulty_delta": pred.difficulty_delta,
            "propensity": 1.0,  # the served policy is the deterministic argmax
        }

    @app.post("/outcomes", dependencies=[Depends(require_client)])
    def outcomes(body: OutcomeRequest) -> dict[str, Any]:
        """Attach the observed outcome to a logged decision."""
        decision_log.flush()
        try:
            store.record_outcome(body.decision_id, body.outcome())
        except LearnopsError as exc:
            if "unknown decision id" in str(exc):
                raise HTTPException(404, "unknown decision id") from None
            raise HTTPException(422, str(exc)) from None
        metrics.observe_outcome()
        return {"decision_id": body.decision_id, "status": "recorded"}

    # -- admin MLOps API -----------------------------------------------------------------------
    admin = [Depends(require_admin)]

    def _is_training() -> bool:
        return retrain_state.running or registry.is_training()

    def _run(req: RetrainRequest) -> None:
        run: dict[str, Any] = retrain_state.last_run or {}
        try:
            result = run_retrain(
                params, since=req.since, limit=req.limit, auto_deploy=req.auto_deploy,
                progress=False,
            )  # fmt: skip
            run.update(status="completed", result=_jsonable(result))
        except TrainingInProgress as exc:
            run.update(status="refused", error=str(exc))
        except NoTrainingData as exc:
            run.update(status="failed", error=str(exc))
        except Exception as exc:
            log.exception("retrain failed")
            run.update(status="failed", error=f"{type(exc).__name__}: {exc}")
        finally:
            run["finishedAt"] = utcnow().isoformat()
            with retrain_state.lock:
                retrain_state.running = False
            holder.refresh()

    @app.post("/api/mlops/retrain", status_code=202, dependencies=admin)
    def retrain(body: RetrainRequest | None = Body(None)) -> dict[str, Any]:
        """Start a retrain in the background (409 while one runs)."""
        req = body or RetrainRequest()
        with retrain_state.lock:
            if _is_training():
                raise HTTPException(409, str(TrainingInProgress()))
            retrain_state.running = True
            retrain_state.last_run = {
                "status": "running",
                "startedAt": utcnow().isoformat(),
                "finishedAt": None,
                "options": {
                    "limit": req.limit,
                    "autoDeploy": req.auto_deploy,
                    "since": req.since.isoformat() if req.since else None,
                },
            }
            thread = threading.Thread(target=_run, args=(req,), name="retrain", daemon=True)
            retrain_state.thread = thread
            thread.start()
        return {"status": "started", "run": retrain_state.last_run}

    @app.get("/api/mlops/status", dependencies=admin)
    def status() -> dict[str, Any]:
        """Whether a retrain runs, the production and served versions, the last API run."""
        prod = {t: registry.production(t) for t in MODEL_TYPES}
        return {
            "isTraining": _is_training(),
            "currentVersion": prod["mlp"].version if prod["mlp"] else None,
            "servingVersion": holder.version,
            "production": {t: v.version if v else None for t, v in prod.items()},
            "lastRun": _jsonable(retrain_state.last_run),
        }

    def _model_type(model: str) -> str:
        if model not in MODEL_TYPES:
            raise HTTPException(422, f"unknown model type {model!r}")
        return model

    @app.get("/api/mlops/versions", dependencies=admin)
    def versions(model: str | None = Query(None)) -> dict[str, Any]:
        """Every registered version (of one model type), oldest first."""
        items = registry.list(_model_type(model) if model else None)
        return {"versions": [v.as_dict() for v in items]}

    @app.get("/api/mlops/versions/{version}", dependencies=admin)
    def version_detail(version: str, model: str = Query("mlp")) -> dict[str, Any]:
        """One version (404 when unknown)."""
        try:
            return registry.get(_model_type(model), version).as_dict()
        except LearnopsError:
            raise HTTPException(404, f"unknown {model} version {version!r}") from None

    @app.get("/api/mlops/production", dependencies=admin)
    def production() -> dict[str, Any]:
        """The production version of each model type (null when none)."""
        out = {}
        for t in MODEL_TYPES:
            v = registry.production(t)
            out[t] = v.as_dict() if v else None
        return out

    @app.post("/api/mlops/deploy/{version}", dependencies=admin)
    def deploy(version: str, model: str = Query("mlp")) -> dict[str, Any]:
        """Make a version production (and serve it at once)."""
        model_type = _model_type(model)
        try:
            registry.get(model_type, version)
        except LearnopsError:
            raise HTTPException(404, f"unknown {model_type} version {version!r}") from None
        try:
            info = registry.deploy(model_type, version)
        except LearnopsError as exc:
            raise HTTPException(409, str(exc)) from None
        if model_type == "mlp":
            holder.refresh()
        return {"deployed": info.as_dict(), "servingVersion": holder.version}

    # -- monitoring ----------------------------------------------------------------------------
    @app.get("/metrics", response_class=PlainTextResponse)
    def prometheus() -> PlainTextResponse:
        """Serving metrics in the Prometheus text format."""
        holder.current()
        body = metrics.render({"mlp": holder.version}, retrain_state.running, threshold)
        return PlainTextResponse(body, media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.get("/health")
    def health() -> dict[str, Any]:
        """Liveness and whether the store answers."""
        try:
            with store.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            db = "ok"
        except Exception as exc:  # reported, not raised: the process itself is alive
            db = f"error: {type(exc).__name__}"
        return {
            "status": "ok" if db == "ok" else "degraded",
            "store": db,
            "modelVersion": holder.version,
            "fallback": teacher_name,
        }

    return app


def run(
    params: Params,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    log_level: str = "info",
    access_log: bool = False,
) -> None:
    """Serve the API with uvicorn until interrupted."""
    import uvicorn

    from learnops.data.hashing import warn_if_demo_salt

    warn_if_demo_salt()
    uvicorn.run(
        create_app(params), host=host, port=port, log_level=log_level, access_log=access_log
    )
