"""Model directory: safetensors weights + metadata.json (+ history.csv), written atomically."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from learnops.contracts import ACTIONS
from learnops.errors import LearnopsError
from learnops.mlp.features import FeatureStats
from learnops.mlp.model import DecisionNet, MlpModel

__all__ = ["WEIGHTS_FILE", "METADATA_FILE", "load", "save"]

WEIGHTS_FILE = "model.safetensors"
METADATA_FILE = "metadata.json"
HISTORY_FILE = "history.csv"


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
        # mkdtemp made it 0o700: model dirs are read by serving users and written by none
        os.chmod(tmp, 0o755)  # nosec B103
        old = None
        if target.exists():
            old = target.parent / f".{target.name}.old-{os.getpid()}"
            os.replace(target, old)
        os.replace(tmp, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    model.metadata = meta
    return target


def load(directory: str | Path) -> MlpModel:
    """Load a model directory written by ``save``."""
    from safetensors.torch import load_file

    d = Path(directory)
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
