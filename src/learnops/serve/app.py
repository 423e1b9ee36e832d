"""The FastAPI application: ``create_app`` builds the state and mounts the routers;
``run`` serves it with uvicorn.

Where things are: learnops.serve.state (served model, retrain state, ``ServeState``),
routes_decide (/decide, /outcomes), routes_admin (/api/mlops/*), routes_ops (/metrics,
/health), routes_dashboard (/dashboard and its data), deps (state and token dependencies),
middleware (request ids, body limit, 5xx counting, 422s without the input).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError

from learnops.config import Params
from learnops.data.store import EventStore
from learnops.serve import (
    routes_admin,
    routes_dashboard,
    routes_decide,
    routes_experiments,
    routes_learners,
    routes_ops,
)
from learnops.serve.auth import Tokens
from learnops.serve.fallback import FallbackTeacher
from learnops.serve.middleware import (
    BodyLimitMiddleware,
    RequestContextMiddleware,
    install_log_filter,
    validation_error_handler,
)
from learnops.serve.state import CHECK_INTERVAL_S, ModelHolder, ServeState

__all__ = ["PARAMS_ENV", "ModelHolder", "app_from_env", "create_app", "run"]


def create_app(
    params: Params,
    *,
    fallback: FallbackTeacher | None = None,
    tokens: Tokens | None = None,
    store: EventStore | None = None,
    retrain_fn: Callable[..., Any] | None = None,
    check_interval: float = CHECK_INTERVAL_S,
) -> FastAPI:
    """The HTTP API over the event store and registry of ``params``.

    ``fallback`` decides when the model is absent or below ``params.mlp.confidence_threshold``
    (default: the simulator's rule policy); ``tokens`` default to the env hashes
    (``LEARNOPS_ADMIN_TOKENS``, ``LEARNOPS_TOKENS``); ``retrain_fn`` defaults to
    ``learnops.lifecycle.retrain.retrain``. The state is ``app.state.serve``; its parts are also
    ``app.state.params``, ``.store``, ``.registry``, ``.holder``, ``.metrics``, ``.retrain`` and
    ``.decision_log``. Request bodies over ``params.serve.max_body_bytes`` get 413 before
    they are parsed; every response carries ``X-Request-ID``.
    """
    state = ServeState.build(
        params,
        fallback=fallback,
        tokens=tokens,
        store=store,
        retrain_fn=retrain_fn,
        check_interval=check_interval,
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        state.start_polling()
        yield
        state.close()

    app = FastAPI(
        title="learnops",
        summary="Teaching decisions (MLP with a fallback teacher) and the MLOps admin API.",
        lifespan=lifespan,
    )
    app.state.serve = state
    for name in ("params", "store", "registry", "holder", "metrics", "retrain", "decision_log"):
        setattr(app.state, name, getattr(state, name))
    app.include_router(routes_decide.router)
    app.include_router(routes_learners.router)
    app.include_router(routes_admin.router)
    app.include_router(routes_experiments.router)
    app.include_router(routes_ops.router)
    app.include_router(routes_dashboard.router)
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    # the last added is the outermost: ids and 5xx counting wrap the body limit
    app.add_middleware(BodyLimitMiddleware, max_body_bytes=params.serve.max_body_bytes)
    app.add_middleware(RequestContextMiddleware, metrics=state.metrics)
    install_log_filter()
    return app


#: Env variable through which ``run(workers > 1)`` hands each uvicorn worker its params.yaml.
PARAMS_ENV = "LEARNOPS_SERVE_PARAMS"


def app_from_env() -> FastAPI:
    """The app of one uvicorn worker: ``create_app`` over the params.yaml named by env
    ``LEARNOPS_SERVE_PARAMS`` (set by ``run`` before it starts the workers)."""
    import os

    from learnops.config import load_params

    return create_app(load_params(os.environ[PARAMS_ENV]))


def run(
    params: Params,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    log_level: str = "info",
    access_log: bool = False,
    workers: int = 1,
    params_path: str | None = None,
) -> None:
    """Serve the API with uvicorn until interrupted (SIGINT/SIGTERM: a graceful shutdown that
    stores the journaled decisions). ``workers`` > 1 starts that many processes on one socket,
    each building its own app from ``params_path``; they share the store, the registry, the
    retrain lock and the decision journal's directory."""
    import os

    import uvicorn

    from learnops.hashing import warn_if_demo_salt

    warn_if_demo_salt()
    if workers > 1:
        if params_path is None:
            raise ValueError("run(workers > 1) needs params_path: each worker loads it")
        os.environ[PARAMS_ENV] = str(Path(params_path).resolve())
        uvicorn.run(
            "learnops.serve.app:app_from_env",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level=log_level,
            access_log=access_log,
        )
        return
    uvicorn.run(
        create_app(params), host=host, port=port, log_level=log_level, access_log=access_log
    )
