"""The 18 decision-model features: validation, matrix extraction and standardization statistics."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from learnops.contracts import FEATURES
from learnops.errors import LearnopsError

__all__ = [
    "FEATURES",
    "FeatureStats",
    "check_features",
    "feature_matrix",
    "feature_vector",
]

#: Default clipping of standardized features, in standard deviations.
DEFAULT_CLIP = 5.0


def check_features(df: pd.DataFrame, what: str = "decisions") -> None:
    """Raise one LearnopsError naming missing, non-numeric or non-finite feature columns."""
    missing = [c for c in FEATURES if c not in df.columns]
    if missing:
        raise LearnopsError(f"{what}: missing feature column(s): {', '.join(missing)}")
    non_numeric = [
        c
        for c in FEATURES
        if not (pd.api.types.is_numeric_dtype(df[c]) or pd.api.types.is_bool_dtype(df[c]))
    ]
    if non_numeric:
        kinds = ", ".join(f"{c} ({df[c].dtype})" for c in non_numeric)
        raise LearnopsError(f"{what}: non-numeric feature column(s): {kinds}")
    bad = []
    for c in FEATURES:
        values = df[c].to_numpy(dtype=np.float64, na_value=np.nan)
        n_bad = int((~np.isfinite(values)).sum())
        if n_bad:
            bad.append(f"{c} ({n_bad} row{'s' if n_bad > 1 else ''})")
    if bad:
        raise LearnopsError(
            f"{what}: missing or non-finite values in feature column(s): {', '.join(bad)}"
        )


def feature_matrix(df: pd.DataFrame, what: str = "decisions") -> np.ndarray:
    """The raw features as a float64 array (n × 18, FEATURES order), after validation."""
    check_features(df, what)
    X = np.empty((len(df), len(FEATURES)), dtype=np.float64)
    for j, c in enumerate(FEATURES):
        X[:, j] = df[c].to_numpy(dtype=np.float64, na_value=np.nan)
    return X


def feature_vector(features: Mapping[str, Any]) -> np.ndarray:
    """One decision's raw features as a float64 vector (18,), after validation."""
    try:
        values = [features[c] for c in FEATURES]
    except KeyError:
        missing = [c for c in FEATURES if c not in features]
        raise LearnopsError(f"features: missing feature(s): {', '.join(missing)}") from None
    out = np.empty(len(FEATURES), dtype=np.float64)
    for i, v in enumerate(values):
        if v is None:
            raise LearnopsError(f"features: {FEATURES[i]} is missing or not finite: None")
        try:
            f = float(v)
        except (TypeError, ValueError):
            raise LearnopsError(f"features: {FEATURES[i]} is not numeric: {v!r}") from None
        if not math.isfinite(f):
            raise LearnopsError(f"features: {FEATURES[i]} is missing or not finite: {v!r}")
        out[i] = f
    return out


@dataclass(frozen=True)
class FeatureStats:
    """Per-feature mean and standard deviation of the training split, and the clipping bound."""

    mean: np.ndarray
    std: np.ndarray
    clip: float = DEFAULT_CLIP
    names: tuple[str, ...] = field(default=FEATURES)

    @classmethod
    def fit(cls, X: np.ndarray, clip: float = DEFAULT_CLIP) -> FeatureStats:
        """Statistics of a raw feature matrix (constant features get std 1)."""
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != len(FEATURES) or len(X) == 0:
            raise LearnopsError(f"cannot fit feature statistics on an array of shape {X.shape}")
        mean = X.mean(axis=0)
        std = X.std(axis=0)
        std = np.where(std > 1e-12, std, 1.0)
        return cls(mean=mean, std=std, clip=float(clip))

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Standardized, clipped features as float32 (same shape as X)."""
        Z = (np.asarray(X, dtype=np.float64) - self.mean) / self.std
        np.clip(Z, -self.clip, self.clip, out=Z)
        return Z.astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (saved in the model metadata)."""
        return {
            "names": list(self.names),
            "mean": [float(v) for v in self.mean],
            "std": [float(v) for v in self.std],
            "clip": self.clip,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FeatureStats:
        """Inverse of to_dict; the feature names must match FEATURES."""
        names = tuple(d.get("names", FEATURES))
        if names != FEATURES:
            raise LearnopsError(
                f"model feature list does not match this learnops version's FEATURES: {list(names)}"
            )
        return cls(
            mean=np.asarray(d["mean"], dtype=np.float64),
            std=np.asarray(d["std"], dtype=np.float64),
            clip=float(d.get("clip", DEFAULT_CLIP)),
            names=names,
        )


def feature_summary(df: pd.DataFrame, columns: Sequence[str] = FEATURES) -> pd.DataFrame:
    """Describe the feature columns (count, mean, std, min, quartiles, max), one row per feature."""
    return df[list(columns)].describe().T
