"""The HTTP API: decisions (MLP with a fallback teacher), outcomes, the admin MLOps API and
Prometheus metrics.

Public API: ``create_app``, ``run``, ``FallbackTeacher``, ``RuleTeacher``, ``Tokens``,
``hash_token`` (FastAPI is imported on first use, so ``import learnops.serve.cli`` stays light).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from learnops.serve.app import create_app, run
    from learnops.serve.auth import Tokens, hash_token
    from learnops.serve.fallback import FallbackTeacher, RuleTeacher

__all__ = ["FallbackTeacher", "RuleTeacher", "Tokens", "create_app", "hash_token", "run"]

_WHERE = {
    "create_app": "app",
    "run": "app",
    "Tokens": "auth",
    "hash_token": "auth",
    "FallbackTeacher": "fallback",
    "RuleTeacher": "fallback",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        import importlib

        value = getattr(importlib.import_module(f"learnops.serve.{_WHERE[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'learnops.serve' has no attribute {name!r}")
