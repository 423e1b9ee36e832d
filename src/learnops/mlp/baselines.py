"""Reference models for the report: majority class and multinomial logistic regression."""

from __future__ import annotations

import numpy as np
import pandas as pd

from learnops.contracts import ACTIONS
from learnops.evaluation.metrics import classification_metrics
from learnops.mlp.features import FeatureStats, feature_matrix
from learnops.mlp.metrics import encode_actions

__all__ = ["baseline_probabilities", "compare_baselines"]


def baseline_probabilities(
    decisions: pd.DataFrame, train_index: np.ndarray, val_index: np.ndarray, seed: int = 0
) -> dict[str, np.ndarray]:
    """Validation-split class probabilities of the majority-class and logistic-regression models."""
    from sklearn.linear_model import LogisticRegression

    X = feature_matrix(decisions)
    y = encode_actions(decisions["action"])
    k = len(ACTIONS)
    counts = np.bincount(y[train_index], minlength=k).astype(np.float64)
    majority = np.zeros((len(val_index), k))
    majority[:, int(counts.argmax())] = 1.0
    # the class frequencies give a finite NLL; the argmax (and accuracy) is the majority class
    prior = np.tile(counts / counts.sum(), (len(val_index), 1))
    stats = FeatureStats.fit(X[train_index])
    # a tight tolerance: a loose fit stops at a CPU-dependent point (metrics must not move)
    lr = LogisticRegression(max_iter=5000, tol=1e-8, random_state=seed)
    lr.fit(stats.transform(X[train_index]), y[train_index])
    p_lr = np.zeros((len(val_index), k))
    p_lr[:, lr.classes_] = lr.predict_proba(stats.transform(X[val_index]))
    return {"majority": prior, "logistic_regression": p_lr}


def compare_baselines(result, decisions: pd.DataFrame, n_bins: int = 15) -> pd.DataFrame:
    """Validation metrics of the MLP (calibrated and not) next to the baselines, one row per model.

    ``result`` is the TrainResult of ``learnops.mlp.train`` on the same ``decisions`` table.
    """
    split = result.split
    y = result.val_y
    probas = {
        "mlp (temperature-scaled)": result.val_proba(calibrated=True),
        "mlp (uncalibrated)": result.val_proba(calibrated=False),
        **baseline_probabilities(decisions, split.train_index, split.val_index, split.seed),
    }
    rows = [{"model": name, **classification_metrics(y, p, n_bins)} for name, p in probas.items()]
    return pd.DataFrame(rows).set_index("model")
