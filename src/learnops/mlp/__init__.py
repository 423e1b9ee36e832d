"""Decision model: an MLP from the 18 features to the 5 teaching actions.

Public API: ``train``, ``save``, ``load``, ``predict``, ``predict_batch``, ``explain``,
``explain_batch`` (torch is imported on
first use, so ``import learnops.mlp.cli`` stays light).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from learnops._lazy import lazy_exports

if TYPE_CHECKING:
    from learnops.mlp.artifacts import load, save
    from learnops.mlp.calibration import expected_calibration_error
    from learnops.mlp.explain import Explanation, explain, explain_batch
    from learnops.mlp.inference import Prediction, predict, predict_batch
    from learnops.mlp.model import MlpModel
    from learnops.mlp.training import SplitInfo, TrainResult, train

__all__ = [
    "Explanation",
    "MlpModel",
    "Prediction",
    "SplitInfo",
    "TrainResult",
    "expected_calibration_error",
    "explain",
    "explain_batch",
    "load",
    "predict",
    "predict_batch",
    "save",
    "train",
]

_WHERE = {
    "load": "artifacts",
    "save": "artifacts",
    "expected_calibration_error": "calibration",
    "Explanation": "explain",
    "explain": "explain",
    "explain_batch": "explain",
    "Prediction": "inference",
    "predict": "inference",
    "predict_batch": "inference",
    "MlpModel": "model",
    "SplitInfo": "training",
    "TrainResult": "training",
    "train": "training",
}


__getattr__ = lazy_exports(__name__, _WHERE)
