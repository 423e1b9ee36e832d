"""Input checks shared by the evaluation modules (raise LearnopsError on user mistakes)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from learnops.errors import LearnopsError


def as_proba(proba: npt.ArrayLike, n_classes: int | None = None, atol: float = 1e-4) -> np.ndarray:
    """A finite (n, K) probability matrix whose rows sum to 1 (renormalized within ``atol``)."""
    p = np.asarray(proba, dtype=float)
    if p.ndim != 2:
        raise LearnopsError(f"probabilities must be a 2-D (n, K) array, got shape {p.shape}")
    if n_classes is not None and p.shape[1] != n_classes:
        raise LearnopsError(f"probabilities have {p.shape[1]} columns, expected {n_classes}")
    if p.shape[0] == 0:
        raise LearnopsError("no rows to evaluate")
    if not np.all(np.isfinite(p)):
        raise LearnopsError("probabilities contain NaN or infinite values")
    if np.any(p < 0) or np.any(p > 1):
        raise LearnopsError("probabilities must lie in [0, 1]")
    sums = p.sum(axis=1)
    if np.any(np.abs(sums - 1.0) > atol):
        bad = int(np.sum(np.abs(sums - 1.0) > atol))
        raise LearnopsError(f"{bad} probability row(s) do not sum to 1")
    return p / sums[:, None]


def as_label_index(y: npt.ArrayLike, labels: Sequence[str]) -> np.ndarray:
    """Class indices 0..K-1 from label strings (members of ``labels``) or integer indices."""
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise LearnopsError(f"labels must be 1-D, got shape {arr.shape}")
    k = len(labels)
    if arr.dtype.kind in "iu" or (arr.dtype.kind == "f" and np.all(arr == np.round(arr))):
        idx = arr.astype(int)
        if idx.size and (idx.min() < 0 or idx.max() >= k):
            raise LearnopsError(f"integer labels must be in 0..{k - 1}")
        return idx
    if arr.dtype.kind == "b":
        raise LearnopsError("class labels must be strings or integer indices, not booleans")
    lookup = {str(lab): i for i, lab in enumerate(labels)}
    out = np.empty(arr.shape[0], dtype=int)
    unknown: set[str] = set()
    for i, v in enumerate(arr):
        j = lookup.get(str(v))
        if j is None:
            unknown.add(str(v))
            j = -1
        out[i] = j
    if unknown:
        raise LearnopsError(
            f"unknown label(s): {', '.join(sorted(unknown))}; known: {list(labels)}"
        )
    return out


def as_binary(y: npt.ArrayLike, name: str = "y") -> np.ndarray:
    """A 1-D 0/1 float array (booleans allowed)."""
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise LearnopsError(f"{name} must be 1-D, got shape {arr.shape}")
    arr = arr.astype(float)
    if not np.all(np.isfinite(arr)):
        raise LearnopsError(f"{name} contains missing values")
    if not np.all((arr == 0) | (arr == 1)):
        raise LearnopsError(f"{name} must be 0/1")
    return arr


def as_prob_vector(p: npt.ArrayLike, n: int | None = None, name: str = "p") -> np.ndarray:
    """A 1-D finite array of probabilities in [0, 1], optionally of length ``n``."""
    arr = np.asarray(p, dtype=float)
    if arr.ndim != 1:
        raise LearnopsError(f"{name} must be 1-D, got shape {arr.shape}")
    if n is not None and arr.shape[0] != n:
        raise LearnopsError(f"{name} has {arr.shape[0]} rows, expected {n}")
    if not np.all(np.isfinite(arr)):
        raise LearnopsError(f"{name} contains NaN or infinite values")
    if np.any(arr < 0) or np.any(arr > 1):
        raise LearnopsError(f"{name} must lie in [0, 1]")
    return arr
