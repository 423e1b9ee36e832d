"""Table reading (CSV/Parquet by extension) and atomic file writes."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from learnops.errors import LearnopsError


def read_table(path: str | Path, columns: Iterable[str] | None = None) -> pd.DataFrame:
    """Read a CSV or Parquet table; ids stay strings. Raises LearnopsError on a bad file."""
    p = Path(path)
    if not p.is_file():
        raise LearnopsError(f"input file not found: {p}")
    suffix = p.suffix.lower()
    try:
        if suffix in {".parquet", ".pq"}:
            df = pd.read_parquet(p)
        elif suffix in {".csv", ".txt"} or p.name.endswith(".csv.gz"):
            df = pd.read_csv(p, dtype={"learner_id": str, "learner_hash": str, "item_id": str})
        else:
            raise LearnopsError(f"{p}: unsupported table format {suffix!r} (use .csv or .parquet)")
    except LearnopsError:
        raise
    except Exception as exc:
        raise LearnopsError(f"{p}: cannot read table: {exc}") from exc
    if columns is not None:
        require_columns(df, columns, what=str(p))
    return df


def require_columns(df: pd.DataFrame, columns: Iterable[str], what: str = "table") -> None:
    """Raise a LearnopsError listing every required column that is missing."""
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise LearnopsError(f"{what}: missing column(s): {', '.join(missing)}")


@contextmanager
def atomic_path(path: str | Path):
    """Yield a temp path beside ``path``; it replaces ``path`` only if the block succeeds."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_bytes(path: str | Path, data: bytes) -> None:
    """Atomically write bytes."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | Path, text: str) -> None:
    """Atomically write text (UTF-8)."""
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | Path, obj: Any) -> None:
    """Atomically write strict JSON (:func:`jsonable`), keys sorted: stable bytes for DVC."""
    text = json.dumps(jsonable(obj), indent=2, sort_keys=True, allow_nan=False)
    write_text(path, text + "\n")


def jsonable(obj: Any) -> Any:
    """A strict-JSON copy of ``obj``: the one sanitizer of the package.

    Mappings, sequences, dataclasses and objects with ``as_dict()`` are converted recursively;
    numpy scalars and arrays become Python values; NaN, ±inf, NaT and NA become None;
    datetimes and timestamps become ISO strings; paths become strings.
    """
    import math
    from dataclasses import asdict, is_dataclass
    from datetime import date, datetime

    import numpy as np

    if obj is None or isinstance(obj, str):
        return obj
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        f = float(obj)
        return f if math.isfinite(f) else None
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [jsonable(v) for v in obj.tolist()]
    if isinstance(obj, (pd.Series, pd.Index)):
        return [jsonable(v) for v in obj.tolist()]
    if obj is pd.NaT or obj is pd.NA:
        return None
    if isinstance(obj, (datetime, date, pd.Timestamp)):
        return obj.isoformat()
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "as_dict") and callable(obj.as_dict):
        return jsonable(obj.as_dict())
    if is_dataclass(obj) and not isinstance(obj, type):
        return jsonable(asdict(obj))
    if isinstance(obj, np.generic):
        return jsonable(obj.item())
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")


def write_table(path: str | Path, df: pd.DataFrame) -> None:
    """Atomically write a CSV or Parquet table (by extension), without the index."""
    p = Path(path)
    with atomic_path(p) as tmp:
        if p.suffix.lower() in {".parquet", ".pq"}:
            df.to_parquet(tmp, index=False)
        else:
            df.to_csv(tmp, index=False)
