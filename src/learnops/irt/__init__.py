"""Item response theory: MML/EM estimation (1PL/2PL/3PL), scoring, heuristic baseline.

Public API (imported lazily so that ``learnops --help`` stays fast):
``fit``, ``load``, ``IrtFit``, ``score``, ``evaluate_predictions``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from learnops._lazy import lazy_exports

if TYPE_CHECKING:
    from learnops.irt.data import evaluate_predictions
    from learnops.irt.model import IrtFit, fit, load
    from learnops.irt.scoring import score

__all__ = ["IrtFit", "evaluate_predictions", "fit", "load", "score"]

_WHERE = {
    "fit": "model",
    "load": "model",
    "IrtFit": "model",
    "score": "scoring",
    "evaluate_predictions": "data",
}


__getattr__ = lazy_exports(__name__, _WHERE)
