"""The HTTP API: decisions (MLP with a fallback teacher), outcomes, the admin MLOps API and
Prometheus metrics.

Public API: ``create_app``, ``run``, ``FallbackTeacher``, ``RuleTeacher``, ``Tokens``,
``hash_token`` (FastAPI is imported on first use, so ``import learnops.serve.cli`` stays light).

Modules: ``app`` (create_app, run), ``state`` (ModelWatch, ModelHolder, RetrainState, ServeState),
``deps`` (state and token dependencies), ``routes_decide`` (/decide, /outcomes),
``routes_admin`` (/api/mlops/*), ``routes_ops`` (/metrics, /health), ``routes_dashboard`` and
``dashboard`` (GET /dashboard, its page in ``static/`` and its data), ``schemas`` (request and
response bodies), ``middleware`` (body size limit, request ids, 5xx counting), ``fallback``,
``auth``, ``decision_log``, ``metrics``, ``cli``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from learnops._lazy import lazy_exports

if TYPE_CHECKING:
    from learnops.serve.app import create_app, run
    from learnops.serve.auth import Tokens, hash_token
    from learnops.serve.fallback import FallbackTeacher, RuleTeacher

__all__ = ["FallbackTeacher", "RuleTeacher", "Tokens", "create_app", "hash_token", "run"]

_WHERE = {
    "create_app": "app",
    "run": "app",
    "Tokens": "auth",
    "hash_token": "auth",  # a submodule name, not a password  # nosec B105
    "FallbackTeacher": "fallback",
    "RuleTeacher": "fallback",
}


__getattr__ = lazy_exports(__name__, _WHERE)
