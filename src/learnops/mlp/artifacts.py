"""Model directory: safetensors weights + metadata.json (+ history.csv), written atomically.

A model set (a seed :class:`~learnops.mlp.ensemble.Ensemble` or per-cohort
:class:`~learnops.mlp.cohorts.CohortModels`) is one directory too (:func:`save_set`): its
primary model (the global model, or ensemble member 0) at the top, as a single model's directory
(so tools reading ``metadata.json`` keep working), every model under ``members/<name>/``, and
``modelset.json`` saying how they combine. :func:`load` returns the set when ``modelset.json``
is there.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from learnops.contracts import ACTIONS
from learnops.errors import LearnopsError
from learnops.io import replace_directory
from learnops.mlp.features import FeatureStats
from learnops.mlp.model import DecisionNet, MlpModel

__all__ = ["WEIGHTS_FILE", "METADATA_FILE", "MODELSET_FILE", "load", "save", "save_set"]

WEIGHTS_FILE = "model.safetensors"
METADATA_FILE = "metadata.json"
HISTORY_FILE = "history.csv"
MODELSET_FILE = "modelset.json"


def _state_dict(net: DecisionNet) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous().clone() for k, v in net.state_dict().items()}


def save(result_or_model: Any, directory: str | Path) -> Path:
    """Write a TrainResult or MlpModel to ``directory`` atomically (replacing any old model)."""
    from safetensors.torch import save_file

    from learnops.io import write_json

    model: MlpModel = getattr(result_or_model, "model", result_or_model)
    if not isinstance(model, MlpModel):
        raise TypeError(f"expected a TrainResult or MlpModel, got {type(result_or_model).__name__}")
    history = getattr(result_or_model, "history", None)
    target = Path(directory)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        weights = tmp / WEIGHTS_FILE
        save_file(_state_dict(model.net), str(weights), metadata={"format": "pt"})
        meta = dict(model.metadata)
        meta["weights_file"] = WEIGHTS_FILE
        meta["weights_sha256"] = hashlib.sha256(weights.read_bytes()).hexdigest()
        meta["temperature"] = model.temperature
        write_json(tmp / METADATA_FILE, meta)
        if isinstance(history, pd.DataFrame):
            # per-epoch wall-clock seconds stay in memory: saved bytes must be reproducible
            history.drop(columns=["seconds"], errors="ignore").to_csv(
                tmp / HISTORY_FILE, index=False
            )
        replace_directory(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    model.metadata = meta
    return target


def save_set(model_set: Any, directory: str | Path, primary: Any = None) -> Path:
    """Write an Ensemble or CohortModels to ``directory`` atomically, as one artifact.

    ``primary`` (a TrainResult of the global model / member 0, optional) supplies the top-level
    history.csv. The bytes depend only on the models (sorted JSON, no timestamps)."""
    from learnops.io import write_json

    kind = getattr(model_set, "kind", None)
    if kind == "ensemble":
        named = {f"seed-{i}": m for i, m in enumerate(model_set.members)}
        top = model_set.members[0]
        spec: dict[str, Any] = {"seeds": list(model_set.seeds), "members": list(named)}
    elif kind == "cohort":
        named = {"global": model_set.global_model}
        named.update({f"cohort-{k}": m for k, m in sorted(model_set.models.items())})
        top = model_set.global_model
        spec = {
            "cohort_by": model_set.cohort_by,
            "edges": list(model_set.edges) if model_set.edges is not None else None,
            "sizes": dict(model_set.sizes),
            "cohorts": {k: f"cohort-{k}" for k in sorted(model_set.models)},
        }
    else:
        raise TypeError(f"expected an Ensemble or CohortModels, got {type(model_set).__name__}")
    target = Path(directory)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        work = tmp / "set"
        save(primary if primary is not None else top, work)
        sums = {}
        for name, m in named.items():
            save(m, work / "members" / name)
            sums[name] = m.metadata["weights_sha256"]
        write_json(work / MODELSET_FILE, {"kind": kind, "weights_sha256": sums, **spec})
        replace_directory(work, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _load_set(d: Path) -> Any:
    try:
        spec = json.loads((d / MODELSET_FILE).read_text())
    except json.JSONDecodeError as exc:
        raise LearnopsError(f"{d / MODELSET_FILE}: invalid JSON: {exc}") from exc
    kind = spec.get("kind")
    if kind == "ensemble":
        from learnops.mlp.ensemble import Ensemble

        members = [_load_one(d / "members" / n) for n in spec["members"]]
        return Ensemble(members, [int(s) for s in spec["seeds"]])
    if kind == "cohort":
        from learnops.mlp.cohorts import CohortModels

        edges = spec.get("edges")
        return CohortModels(
            cohort_by=spec["cohort_by"],
            global_model=_load_one(d / "members" / "global"),
            models={k: _load_one(d / "members" / v) for k, v in spec["cohorts"].items()},
            edges=tuple(edges) if edges is not None else None,
            sizes={k: int(v) for k, v in spec.get("sizes", {}).items()},
        )
    raise LearnopsError(f"{d / MODELSET_FILE}: unknown model set kind {kind!r}")


def load(directory: str | Path) -> Any:
    """Load a model directory written by ``save`` (an MlpModel) or ``save_set`` (an Ensemble
    or CohortModels)."""
    d = Path(directory)
    if (d / MODELSET_FILE).is_file():
        return _load_set(d)
    return _load_one(d)


def _load_one(d: Path) -> MlpModel:
    from safetensors.torch import load_file

    meta_path, weights_path = d / METADATA_FILE, d / WEIGHTS_FILE
    for p in (meta_path, weights_path):
        if not p.is_file():
            raise LearnopsError(f"not an MLP model directory (missing {p.name}): {d}")
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as exc:
        raise LearnopsError(f"{meta_path}: invalid JSON: {exc}") from exc
    if tuple(meta.get("actions", ())) != ACTIONS:
        raise LearnopsError(f"{meta_path}: action mapping {meta.get('actions')} != {list(ACTIONS)}")
    arch = meta["architecture"]
    net = DecisionNet(
        n_in=arch["input"], hidden=tuple(arch["hidden"]), n_out=arch["outputs"], dropout=0.0
    )
    try:
        net.load_state_dict(load_file(str(weights_path)))
    except Exception as exc:
        raise LearnopsError(f"{weights_path}: weights do not match the metadata: {exc}") from exc
    dd = meta.get("difficulty_delta", {})
    return MlpModel(
        net=net,
        stats=FeatureStats.from_dict(meta["feature_stats"]),
        temperature=float(meta["temperature"]),
        delta_trained=bool(dd.get("trained", False)),
        delta_mean=float(dd.get("mean", 0.0)),
        delta_std=float(dd.get("std", 1.0)),
        metadata=meta,
    )
