"""Table reading (CSV/Parquet by extension), atomic file writes, and giving freed memory back
to the system between the phases of a large job."""

from __future__ import annotations

import functools
import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from learnops.errors import LearnopsError


def read_table(
    path: str | Path, columns: Iterable[str] | None = None, text_columns: Iterable[str] = ()
) -> pd.DataFrame:
    """Read a CSV or Parquet table; ids (and a CSV's ``text_columns``) stay strings. Raises
    LearnopsError on a bad file."""
    p = Path(path)
    if not p.is_file():
        raise LearnopsError(f"input file not found: {p}")
    suffix = p.suffix.lower()
    try:
        if suffix in {".parquet", ".pq"}:
            df = pd.read_parquet(p)
        elif suffix in {".csv", ".txt"} or p.name.endswith(".csv.gz"):
            text = {"learner_id", "learner_hash", "item_id", *text_columns}
            df = pd.read_csv(p, dtype=dict.fromkeys(sorted(text), str))
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


def replace_directory(new: Path, target: Path) -> Path:
    """Move the finished directory ``new`` to ``target``, replacing it: two renames on the same
    filesystem, so a reader sees the old or the new directory, never a mix of both. ``new``
    (from ``mkdtemp``, 0o700) is made 0o755 first: model directories are read by the serving
    users and written by none. Returns ``target``."""
    import shutil

    os.chmod(new, 0o755)  # nosec B103: see the docstring
    old = None
    if target.exists():
        old = target.parent / f".{target.name}.old-{os.getpid()}"
        os.replace(target, old)
    os.replace(new, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return target


def write_bytes(path: str | Path, data: bytes) -> None:
    """Atomically write bytes."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | Path, text: str) -> None:
    """Atomically write text (UTF-8)."""
    write_bytes(path, text.encode("utf-8"))


#: Significant digits of DVC metrics and plot data: enough for any real change, few enough that
#: the last-bit differences between CPUs (SIMD exp/log, BLAS kernels) round away.
METRIC_DIGITS = 10


def round_sig(x: float, digits: int = METRIC_DIGITS) -> float:
    """``x`` rounded to ``digits`` significant digits, exactly as decimal text would be (Python's
    correctly rounded formatting: the same result on every machine); -0.0 becomes 0.0, NaN and
    ±inf stay as they are. ``repr`` of the result has at most ``digits`` significant digits."""
    if digits < 1:
        raise ValueError(f"digits must be >= 1, got {digits}")
    return float(f"{float(x):.{digits}g}") + 0.0


def round_frame(df: pd.DataFrame, digits: int = METRIC_DIGITS) -> pd.DataFrame:
    """A copy of ``df`` with every float column rounded by :func:`round_sig` (other columns as
    they are): for tables whose bytes feed a hash (Parquet/CSV outputs of DVC stages)."""
    import numpy as np

    out = df.copy()
    for col in out.columns:
        s = out[col]
        if pd.api.types.is_float_dtype(s.dtype):
            raw = s.to_numpy(dtype=float, na_value=np.nan)
            values = np.array([round_sig(v, digits) for v in raw.tolist()], dtype=float)
            out[col] = pd.Series(values, index=s.index, dtype=s.dtype, name=col)
    return out


def write_json(path: str | Path, obj: Any, *, digits: int | None = None) -> None:
    """Atomically write strict JSON (:func:`jsonable`), keys sorted: stable bytes for DVC.

    With ``digits``, every float is rounded to that many significant digits (:func:`round_sig`),
    so the file is the same on machines whose floats differ in the last bits."""
    text = json.dumps(jsonable(obj, digits=digits), indent=2, sort_keys=True, allow_nan=False)
    write_text(path, text + "\n")


def jsonable(obj: Any, *, digits: int | None = None) -> Any:
    """A strict-JSON copy of ``obj``: the one sanitizer of the package.

    Mappings, sequences, dataclasses and objects with ``as_dict()`` are converted recursively;
    numpy scalars and arrays become Python values; NaN, ±inf, NaT and NA become None;
    datetimes and timestamps become ISO strings; paths become strings. With ``digits``, floats
    are rounded to that many significant digits (:func:`round_sig`).
    """
    return _jsonable(obj, digits)


def _jsonable(obj: Any, digits: int | None) -> Any:
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
        if not math.isfinite(f):
            return None
        return f if digits is None else round_sig(f, digits)
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v, digits) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [_jsonable(v, digits) for v in obj]
    if isinstance(obj, np.ndarray):
        return [_jsonable(v, digits) for v in obj.tolist()]
    if isinstance(obj, (pd.Series, pd.Index)):
        return [_jsonable(v, digits) for v in obj.tolist()]
    if obj is pd.NaT or obj is pd.NA:
        return None
    if isinstance(obj, (datetime, date, pd.Timestamp)):
        return obj.isoformat()
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "as_dict") and callable(obj.as_dict):
        return _jsonable(obj.as_dict(), digits)
    if is_dataclass(obj) and not isinstance(obj, type):
        return _jsonable(asdict(obj), digits)
    if isinstance(obj, np.generic):
        return _jsonable(obj.item(), digits)
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")


def write_table(path: str | Path, df: pd.DataFrame, *, digits: int | None = None) -> None:
    """Atomically write a CSV or Parquet table (by extension), without the index.

    With ``digits``, float columns are rounded to that many significant digits first
    (:func:`round_frame`): the same bytes on machines whose floats differ in the last bits."""
    p = Path(path)
    if digits is not None:
        df = round_frame(df, digits)
    with atomic_path(p) as tmp:
        if p.suffix.lower() in {".parquet", ".pq"}:
            df.to_parquet(tmp, index=False)
        else:
            df.to_csv(tmp, index=False)


@functools.cache
def glibc() -> Any:
    """The C library if it is glibc (``malloc_trim`` and ``mallopt``, argument types set), else
    None."""
    import ctypes

    try:
        lib = ctypes.CDLL(None)
        lib.gnu_get_libc_version  # noqa: B018  (glibc only)
        lib.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        lib.malloc_trim.argtypes = [ctypes.c_size_t]
    except (OSError, AttributeError):  # pragma: no cover - not glibc
        return None
    return lib


def release_free_memory() -> None:
    """Give freed memory back to the system: Arrow's pool (its allocator keeps freed buffers)
    and the C heap's free pages (glibc ``malloc_trim``; elsewhere nothing). Between the phases
    of a large job (the streaming export, then its ability fit): freed medium-sized blocks stay
    resident otherwise, and the next phase's large arrays (mapped apart) would come on top of
    them."""
    import pyarrow as pa

    pa.default_memory_pool().release_unused()
    lib = glibc()
    if lib is not None:
        lib.malloc_trim(0)
