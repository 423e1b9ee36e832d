"""Lazy package exports: heavy submodules load on first attribute access, so the CLI starts fast."""

from __future__ import annotations

import importlib
import sys
import threading
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, where: Mapping[str, str]) -> Callable[[str], Any]:
    """A module-level ``__getattr__`` resolving ``name`` from ``package.<where[name]>``."""

    def __getattr__(name: str) -> Any:
        if name in where:
            module = importlib.import_module(f"{package}.{where[name]}")
            value = getattr(module, name)
            globals_ = importlib.import_module(package).__dict__
            globals_[name] = value
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__


def import_in_background(module: str) -> threading.Thread | None:
    """Start importing ``module`` on a daemon thread (None if it is already imported), so that
    a slow import (torch: about a second) overlaps the caller's work; a later ``import`` of it
    waits for this one. Join the thread before leaving, error paths included, so that the
    process never exits in the middle of the import."""
    if module in sys.modules:
        return None
    thread = threading.Thread(
        target=importlib.import_module, args=(module,), name=f"import-{module}", daemon=True
    )
    thread.start()
    return thread
