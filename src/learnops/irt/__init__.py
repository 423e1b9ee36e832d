"""Item response theory: MML/EM estimation (1PL/2PL/3PL), scoring, heuristic baseline.

Public API (imported lazily so that ``learnops --help`` stays fast):
``fit``, ``load``, ``IrtFit``, ``score``, ``split_holdout``, ``evaluate_predictions``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from learnops.irt.data import evaluate_predictions, split_holdout
    from learnops.irt.model import IrtFit, fit, load
    from learnops.irt.scoring import score

__all__ = ["IrtFit", "evaluate_predictions", "fit", "load", "score", "split_holdout"]

_WHERE = {
    "fit": "learnops.irt.model",
    "load": "learnops.irt.model",
    "IrtFit": "learnops.irt.model",
    "score": "learnops.irt.scoring",
    "split_holdout": "learnops.irt.data",
    "evaluate_predictions": "learnops.irt.data",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'learnops.irt' has no attribute {name!r}")
