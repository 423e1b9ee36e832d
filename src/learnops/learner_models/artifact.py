"""A fitted ability model (``irt.ability_model``) as a registry artifact: one directory, written
atomically file by file, byte-identical for the same fit.

``learner.json`` names the model and holds its parameters (Elo: alpha, beta and the item
difficulties; Best-LR: the coefficients and modules; every model: the IRT config it ran with);
static IRT and Best-LR also hold the IRT fit (``irt/``: items.csv, abilities.csv, fit.json as
``learnops.irt`` writes them). Floats go to JSON at 12 significant digits, so the bytes do not
depend on the last bits of a platform's arithmetic.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from learnops.errors import LearnopsError

MARKER = "learner.json"
#: Significant digits of the floats in learner.json.
DIGITS = 12


def save(model: Any, directory: str | Path) -> Path:
    """Write ``model`` (StaticIrt, Elo or BestLr, fitted) into ``directory``, replacing what was
    there in one rename (a reader sees the old model or the new one, never a mix)."""
    import os
    import shutil

    d = Path(directory)
    tmp = d.with_name(f".{d.name}.tmp")
    old = d.with_name(f".{d.name}.old")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(old, ignore_errors=True)
    _write(model, tmp)
    if d.exists():
        os.replace(d, old)
    os.replace(tmp, d)
    shutil.rmtree(old, ignore_errors=True)
    return d


def _write(model: Any, d: Path) -> None:
    from learnops.io import write_json

    d.mkdir(parents=True, exist_ok=True)
    name = getattr(model, "name", None)
    doc: dict[str, Any] = {"model": name}
    if name == "irt":
        irt = model
    elif name == "best_lr":
        irt = model.irt
        doc["C"] = model.C
        doc["modules"] = [str(m) for m in model.modules]
        doc["coef"] = {str(k): float(v) for k, v in model.coef.items()}
    elif name == "elo":
        irt = None
        doc["alpha"], doc["beta"] = float(model.alpha), float(model.beta)
        doc["difficulty"] = {str(k): float(v) for k, v in model.difficulty.items()}
    else:
        raise LearnopsError(f"cannot save learner model {name!r}: irt, elo or best_lr only")
    if irt is not None:
        irt._require().save(d / "irt", timing=False)
        doc["irt_config"] = irt.config.model_dump(mode="json")
        doc["seed"] = int(irt.seed)
    write_json(d / MARKER, doc, digits=DIGITS)


def load(directory: str | Path) -> Any:
    """The model :func:`save` wrote into ``directory``."""
    from learnops.config import IrtConfig
    from learnops.learner_models.best_lr import BestLr
    from learnops.learner_models.elo import Elo
    from learnops.learner_models.irt_static import StaticIrt

    d = Path(directory)
    path = d / MARKER
    if not path.is_file():
        raise LearnopsError(f"{d}: not a learner model directory (no {MARKER})")
    doc = json.loads(path.read_text())
    name = doc.get("model")
    if name == "elo":
        diff = pd.Series(doc["difficulty"], dtype=float, name="difficulty")
        diff.index = pd.Index(diff.index.astype(str), name="item_id")
        return Elo(alpha=doc["alpha"], beta=doc["beta"], difficulty=diff)
    if name not in ("irt", "best_lr"):
        raise LearnopsError(f"{path}: unknown learner model {name!r}")
    from learnops.irt import load as load_irt

    irt = StaticIrt.from_fit(load_irt(d / "irt"), IrtConfig(**doc["irt_config"]))
    irt.seed = int(doc.get("seed", 0))
    if name == "irt":
        return irt
    coef = pd.Series(doc["coef"], dtype=float)
    model = BestLr(irt, C=doc["C"], fit_irt=False, modules=pd.Index(doc["modules"], dtype=str))
    model.coef = coef.reindex(["intercept", *model.columns()])
    return model
