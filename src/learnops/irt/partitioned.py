"""IRT on a response dataset partitioned by learner hash, read by the workers themselves.

``partition_responses`` (``learnops irt partition``) streams a response table (CSV or Parquet,
read in batches with pyarrow, never whole) into a Parquet dataset ``OUT/shard=NNNNN/part-K.parquet``
where the shard of a learner is a stable hash of their id (``learner_shard``), so that each
learner's responses are in one partition. It is written to a temporary directory and renamed.

``fit_partitioned`` (``learnops irt fit DATASET_DIR``) fits such a dataset without the driver ever
reading it: the driver lists the partitions; each engine task reads *its* partition (so the
dataset path must be visible to the workers: a shared filesystem or an object-store URL that
pyarrow opens, e.g. ``s3://bucket/responses``), validates and encodes it (``data.encode``) and
returns small sums: the items it has with their answer and correct counts, its learner ids and a
histogram of answers per learner. The driver reduces them (the global item index, the start
values, the data warnings, the standard-error method) and sends the item index back; each task
then codes its items with it and builds its ``estep.EStep``, which stays in worker memory (a
future per shard held by the driver) for every EM E-step, the standard errors' pass (the lanes
of ``parallel.lane_run``) and the EAP abilities. The driver holds O(items) state plus the output
abilities (learner id, θ, SE), sorted by learner id as ``irt.fit`` writes them.

The estimates equal ``irt.fit`` on the same table up to the order of floating-point sums (the
shards differ), and are deterministic for a given dataset: the shards are the partitions, and
their sums are taken in partition order whatever the number of workers.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from learnops.errors import LearnopsError
from learnops.irt import estep
from learnops.irt.parallel import (
    SE_LANES,
    SHARD_RESPONSES,
    DaskEngine,
    Shard,
    ShardedEStep,
    ShardOut,
    keeps_heap,
    lane_run,
)
from learnops.irt.se import louis_flops_from_hist

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from learnops.config import IrtConfig
    from learnops.irt.data import Encoded
    from learnops.irt.model import IrtFit
    from learnops.irt.parallel import LocalEngine
    from learnops.irt.params import Params

#: The 16-byte key of the partition hash: SipHash-2-4 of the UTF-8 learner id with this key,
#: then the splitmix64 finalizer (``pandas.util.hash_array``, stable across pandas versions;
#: pinned by a test), modulo the number of shards.
HASH_KEY = "learnopsirtshard"
#: Recorded in the dataset's ``_learnops_partition.json``.
SCHEME = "learnops.irt.partition/1: siphash24(utf8(id), key='learnopsirtshard'), splitmix64, mod N"
META_FILE = "_learnops_partition.json"
#: Rows read from the input per batch when partitioning.
BATCH_ROWS = 1 << 20
#: Rows buffered in all (per-shard row groups) while partitioning: bounds the writer's memory.
BUFFER_ROWS = 8 << 20
_SHARD_DIR = re.compile(r"^shard=(\d+)$")
_LEARNER_COLUMNS = ("learner_id", "learner_hash")


# ---------------------------------------------------------------- the partition writer


def learner_shard(ids: Any, n_shards: int) -> np.ndarray:
    """Shard (0 … n_shards − 1) of each learner id (taken as text): SipHash-2-4 with the fixed
    key ``HASH_KEY`` and the splitmix64 finalizer, modulo ``n_shards``. The same id gives the
    same shard in any process, on any machine."""
    import pyarrow as pa
    import pyarrow.compute as pc
    from pandas.util import hash_array

    arr = ids if isinstance(ids, pa.Array | pa.ChunkedArray) else pa.array(ids, pa.string())
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    arr = pc.cast(arr, pa.string())
    enc = pc.dictionary_encode(arr)  # hash each distinct id once
    words = np.asarray(enc.dictionary.to_pylist(), dtype=object)
    h = hash_array(words, encoding="utf8", hash_key=HASH_KEY, categorize=False)
    shard = (h % np.uint64(n_shards)).astype(np.int32)
    return shard[enc.indices.to_numpy(zero_copy_only=False)]


def default_shards(n_responses: int) -> int:
    """One shard per ``parallel.SHARD_RESPONSES`` responses (at least 1)."""
    return int(max(1, -(-n_responses // SHARD_RESPONSES)))


@dataclass
class PartitionSummary:
    """What ``partition_responses`` wrote."""

    out_dir: Path
    rows: int
    shards: int
    partitions: int
    learner_column: str


def _source_columns(names: list[str], what: str) -> tuple[str, list[str]]:
    lcol = next((c for c in _LEARNER_COLUMNS if c in names), None)
    missing = ([] if lcol else ["learner_id (or learner_hash)"]) + [
        c for c in ("item_id", "correct") if c not in names
    ]
    if missing:
        raise LearnopsError(f"{what}: missing column(s): {', '.join(missing)}")
    return lcol, [lcol, "item_id", "correct"]  # type: ignore[list-item]


def _open_source(path: Path, batch_rows: int) -> tuple[str, int | None, Any]:
    """(learner column, row count if known, iterator of record batches of the three columns)."""
    import pyarrow as pa

    suffix = path.suffix.lower()
    if suffix in {".parquet", ".pq"}:
        import pyarrow.parquet as pq

        try:
            pf = pq.ParquetFile(path)
        except Exception as exc:
            raise LearnopsError(f"{path}: cannot read table: {exc}") from None
        lcol, cols = _source_columns(pf.schema_arrow.names, str(path))
        return lcol, pf.metadata.num_rows, pf.iter_batches(batch_size=batch_rows, columns=cols)
    if suffix in {".csv", ".txt"} or path.name.endswith(".csv.gz"):
        from pyarrow import csv

        try:  # the header names, and the bytes per row (the CSV's batches, its row count)
            with pa.input_stream(str(path), compression="detect") as fh:
                head = fh.read(1 << 20)
            first = csv.read_csv(pa.py_buffer(head.split(b"\n", 1)[0] + b"\n"))
        except Exception as exc:
            raise LearnopsError(f"{path}: cannot read table: {exc}") from None
        lcol, cols = _source_columns(first.column_names, str(path))
        row_bytes = len(head) / max(1, head.count(b"\n") - 1)
        rows = None if path.name.endswith(".gz") else int(path.stat().st_size / row_bytes)
        opts = csv.ConvertOptions(include_columns=cols, column_types={c: pa.string() for c in cols})
        block = int(min(256 << 20, max(1 << 14, batch_rows * row_bytes)))
        try:
            reader = csv.open_csv(
                path, read_options=csv.ReadOptions(block_size=block), convert_options=opts
            )
        except pa.ArrowException as exc:
            raise LearnopsError(f"{path}: cannot read table: {exc}") from None
        return lcol, rows, reader
    raise LearnopsError(f"{path}: unsupported table format {suffix!r} (use .csv or .parquet)")


def _checked_batch(
    batch: pa.RecordBatch, lcol: str, names: pa.Array, n_shards: int, what: str
) -> pa.RecordBatch:
    """The batch's ids as text, ``correct`` validated as int8 0/1, plus its shard column."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc

    from learnops.irt.data import binary_correct

    cols = []
    for name in (lcol, "item_id"):
        col = batch.column(name)
        if col.null_count:
            raise LearnopsError(f"{what}: {col.null_count} missing value(s) in '{name}'")
        cols.append(pc.cast(col, pa.string()))
    corr = batch.column("correct")
    if pa.types.is_string(corr.type) or pa.types.is_large_string(corr.type):
        # the common case: 0/1 text; anything else goes through binary_correct
        with contextlib.suppress(pa.ArrowInvalid):
            corr = pc.cast(corr, pa.int64())
    y = binary_correct(pd.Series(corr.to_pandas()), what)
    shard = learner_shard(cols[0], n_shards)
    shard_col = pa.DictionaryArray.from_arrays(pa.array(shard, pa.int32()), names)
    return pa.RecordBatch.from_arrays(
        [cols[0], cols[1], pa.array(y, pa.int8()), shard_col],
        names=[lcol, "item_id", "correct", "shard"],
    )


def partition_responses(
    responses: str | Path,
    out_dir: str | Path,
    shards: int | None = None,
    *,
    overwrite: bool = False,
    batch_rows: int = BATCH_ROWS,
) -> PartitionSummary:
    """Write a response table (CSV/Parquet: learner_id|learner_hash, item_id, correct) as a
    Parquet dataset ``out_dir/shard=NNNNN/part-K.parquet`` partitioned by ``learner_shard`` of the
    learner id, streaming (``batch_rows`` rows at a time). ``shards`` defaults to one per
    ``parallel.SHARD_RESPONSES`` responses (for a CSV, estimated from the file size). Ids are
    written as text and ``correct`` as int8 (validated); other columns are dropped. Atomic: the
    dataset is written beside ``out_dir`` and renamed; an existing non-empty ``out_dir`` is
    replaced only with ``overwrite``."""
    import pyarrow as pa
    import pyarrow.dataset as ds

    src, out = Path(responses), Path(out_dir)
    if not src.is_file():
        raise LearnopsError(f"input file not found: {src}")
    if out.exists() and not (out.is_dir() and not any(out.iterdir())) and not overwrite:
        raise LearnopsError(f"{out}: already exists (use --overwrite to replace it)")
    if shards is not None and shards < 1:
        raise LearnopsError(f"--shards must be at least 1, got {shards}")
    lcol, n_rows, batches = _open_source(src, batch_rows)
    n_shards = int(shards or default_shards(n_rows or 0))
    width = max(5, len(str(n_shards - 1)))
    names = pa.array([f"{s:0{width}d}" for s in range(n_shards)], pa.string())
    part_type = pa.dictionary(pa.int32(), pa.string())
    schema = pa.schema(
        [
            (lcol, pa.string()),
            ("item_id", pa.string()),
            ("correct", pa.int8()),
            ("shard", part_type),
        ]
    )
    rows = 0

    def checked():
        nonlocal rows
        for batch in batches:
            what = f"{src} rows {rows + 1}-{rows + batch.num_rows}"
            yield _checked_batch(batch, lcol, names, n_shards, what)
            rows += batch.num_rows

    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    except OSError as exc:
        raise LearnopsError(f"{out}: cannot write the dataset: {exc.strerror or exc}") from None
    try:
        group = int(min(1 << 20, max(1 << 12, BUFFER_ROWS // n_shards)))
        try:
            ds.write_dataset(
                checked(),
                str(tmp / "data"),
                schema=schema,
                format="parquet",
                partitioning=ds.partitioning(pa.schema([("shard", part_type)]), flavor="hive"),
                basename_template="part-{i}.parquet",
                use_threads=False,  # rows in input order: the same files every time
                preserve_order=True,
                max_partitions=n_shards,
                max_open_files=min(n_shards, 1000),
                min_rows_per_group=group,
                max_rows_per_group=max(group, 1 << 20),
            )
        except LearnopsError:
            raise
        except (pa.ArrowException, OSError) as exc:
            raise LearnopsError(f"{src}: cannot partition: {exc}") from None
        data = tmp / "data"
        data.mkdir(exist_ok=True)  # no rows: an empty dataset (the fit says so)
        meta = {"format": SCHEME, "learner_column": lcol, "shards": n_shards, "rows": rows,
                "source": src.name}  # fmt: skip
        (data / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
        partitions = sum(1 for p in data.iterdir() if _SHARD_DIR.match(p.name))
        _replace_dir(data, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return PartitionSummary(out, rows, n_shards, partitions, lcol)


def _replace_dir(new: Path, out: Path) -> None:
    """Move the directory ``new`` to ``out`` (replacing it, if any, by two renames)."""
    umask = os.umask(0)
    os.umask(umask)
    for p in [new, *new.rglob("*")]:
        os.chmod(p, (0o777 if p.is_dir() else 0o666) & ~umask)
    if not out.exists():
        os.rename(new, out)
        return
    old = out.with_name(f".{out.name}.old-{uuid.uuid4().hex[:8]}")
    os.rename(out, old)
    os.rename(new, out)
    shutil.rmtree(old, ignore_errors=True)


# ---------------------------------------------------------------- the dataset, seen by the tasks


def _filesystem(uri: str) -> tuple[Any, str]:
    """(pyarrow filesystem, path in it) of a local path or a URL (s3://, gs://, file://...)."""
    import pyarrow.fs as pafs

    if "://" in uri:
        try:
            return pafs.FileSystem.from_uri(uri)
        except Exception as exc:  # unknown scheme, no credentials, ...
            raise LearnopsError(f"{uri}: cannot open: {exc}") from None
    return pafs.LocalFileSystem(), os.path.abspath(uri)


def _display(uri: str, root: str, path: str) -> str:
    """A partition file as the user would name it (the URL, or the local path)."""
    if "://" in uri:
        return uri.rstrip("/") + "/" + os.path.relpath(path, root)
    return path


def list_partitions(dataset: str | Path) -> list[tuple[int, list[str]]]:
    """The shards of a partitioned dataset, in shard order: (shard number, its Parquet files,
    as paths in the dataset's filesystem). Only the driver lists; it reads no data."""
    import pyarrow.fs as pafs

    uri = str(dataset)
    fs, root = _filesystem(uri)
    info = fs.get_file_info(root)
    if info.type == pafs.FileType.NotFound:
        raise LearnopsError(f"{uri}: dataset not found")
    if info.type != pafs.FileType.Directory:
        raise LearnopsError(f"{uri}: not a partitioned dataset directory")
    shards: dict[int, list[str]] = {}
    for f in fs.get_file_info(pafs.FileSelector(root, recursive=True)):
        if f.type != pafs.FileType.File:
            continue
        rel = os.path.relpath(f.path, root).split(os.sep)
        if rel[-1].startswith((".", "_")):
            continue
        m = _SHARD_DIR.match(rel[0]) if len(rel) > 1 else None
        if m is None:
            if rel[-1].endswith(".parquet"):
                raise LearnopsError(
                    f"{_display(uri, root, f.path)}: not in a shard=NNNNN directory (a "
                    "partitioned dataset holds only shard=NNNNN/*.parquet; write one with "
                    "`learnops irt partition`)"
                )
            continue
        if rel[-1].endswith(".parquet"):
            shards.setdefault(int(m.group(1)), []).append(f.path)
    if not shards:
        raise LearnopsError(
            f"{uri}: no partitions (shard=NNNNN/*.parquet files); write them with "
            f"`learnops irt partition RESPONSES {uri}`"
        )
    return [(s, sorted(shards[s])) for s in sorted(shards)]


@dataclass
class _Part:
    """One partition, read and encoded on a worker (local learner and item codes)."""

    enc: Encoded
    what: str


def _read_partition(uri: str, files: list[str]) -> _Part:
    """Read (only) this partition's files and validate and encode its responses."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from learnops.irt.data import encode

    fs, root = _filesystem(uri)
    what = _display(uri, root, files[0])
    if len(files) > 1:
        what = f"{_display(uri, root, os.path.dirname(files[0]))} ({len(files)} files)"
    tables = []
    for f in files:
        try:
            with fs.open_input_file(f) as fh:
                pf = pq.ParquetFile(fh)
                names = pf.schema_arrow.names
                lcol = next((c for c in _LEARNER_COLUMNS if c in names), None)
                cols = [c for c in (lcol, "item_id", "correct") if c in names]
                tables.append(pf.read(columns=cols))
        except (pa.ArrowException, OSError) as exc:
            raise LearnopsError(f"{_display(uri, root, f)}: cannot read: {exc}") from None
    try:
        table = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
    except pa.ArrowException as exc:
        raise LearnopsError(f"{what}: files with different columns: {exc}") from None
    df: pd.DataFrame = table.to_pandas()
    del tables, table
    return _Part(encode(df, what=what), what)


def _part_stats(part: _Part) -> dict[str, Any]:
    """The sums the driver reduces: items with their answer and correct counts, learner ids,
    histogram of answers per learner."""
    enc = part.enc
    per_learner = np.bincount(enc.learner, minlength=enc.n_learners)
    return {
        "items": enc.item_ids,
        "n": np.bincount(enc.item, minlength=enc.n_items),
        "k": np.bincount(enc.item, weights=enc.y, minlength=enc.n_items).astype(np.int64),
        "learners": enc.learner_ids,
        "per_learner_hist": np.bincount(per_learner),
        "what": part.what,
    }


def _build_partition_shard(
    part: _Part,
    item_ids: np.ndarray,
    theta: np.ndarray,
    logw: np.ndarray,
    chunk_cells: int,
    backend: str,
    cache_bytes: int,
) -> Shard:
    """This partition's E-step, its items coded by the global (sorted) item index."""
    from learnops.irt.data import Encoded

    enc = part.enc
    codes = np.searchsorted(item_ids, enc.item_ids)
    coded = Encoded(enc.learner_ids, item_ids, enc.learner, codes[enc.item], enc.y)
    x = estep.design_matrix(coded)
    es = estep.EStep(x, theta, logw, chunk_cells, backend, dense_cache_bytes=cache_bytes)
    return Shard(np.empty(0, dtype=np.int64), es)


def _shard_backend(shard: Shard) -> str:
    return shard.estep.backend


# ---------------------------------------------------------------- running tasks on an engine


def _submit(
    engine: LocalEngine | DaskEngine, fn: Any, args: list[tuple], spread: bool = False
) -> list[Any]:
    """``fn(*a)`` for each ``a`` as engine tasks whose results stay where they were computed:
    Dask futures (``spread``: task i placed on worker ⌊i·W/n⌋, so consecutive shards share a
    worker and the SE lanes move few shards), or the objects themselves (threads)."""
    if not isinstance(engine, DaskEngine):
        return engine.build(fn, args)
    client = engine.client
    workers = sorted(client.scheduler_info(n_workers=-1)["workers"]) if spread else []
    out = []
    for i, a in enumerate(args):
        where = {}
        if workers:
            where = {"workers": [workers[i * len(workers) // len(args)]],
                     "allow_other_workers": True}  # fmt: skip
        out.append(client.submit(fn, *a, pure=False, **where))
    return out


def _gather(engine: LocalEngine | DaskEngine, handles: list[Any]) -> list[Any]:
    if not isinstance(engine, DaskEngine):
        return handles
    return engine.client.gather(handles)


@dataclass
class DatasetSummary:
    """The reduction of the partitions' sums: all the driver knows of the data."""

    item_ids: np.ndarray
    n: np.ndarray
    k: np.ndarray
    learner_ids: np.ndarray  # in shard order, each shard's sorted
    shard_learners: list[int]
    per_learner_hist: np.ndarray
    partitions: int

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @property
    def n_learners(self) -> int:
        return len(self.learner_ids)

    @property
    def n_responses(self) -> int:
        return int(self.n.sum())


def _reduce(stats: list[dict[str, Any]], dataset: str) -> DatasetSummary:
    """Global item index and counts, the learners in shard order (each in one partition)."""
    import pandas as pd

    item_ids = np.unique(np.concatenate([s["items"] for s in stats]))
    n = np.zeros(len(item_ids), dtype=np.int64)
    k = np.zeros(len(item_ids), dtype=np.int64)
    hist = np.zeros(max(len(s["per_learner_hist"]) for s in stats), dtype=np.int64)
    for s in stats:
        pos = np.searchsorted(item_ids, s["items"])
        n[pos] += s["n"]
        k[pos] += s["k"]
        hist[: len(s["per_learner_hist"])] += s["per_learner_hist"]
    learners = np.concatenate([s["learners"] for s in stats])
    sizes = [len(s["learners"]) for s in stats]
    index = pd.Index(learners)
    if not index.is_unique:
        dup = index[index.duplicated()][0]
        where = [s["what"] for s in stats if dup in set(s["learners"])][:2]
        raise LearnopsError(
            f"{dataset}: learner {dup!r} is in more than one partition ({' and '.join(where)}): "
            "each learner's responses must be in one partition (`learnops irt partition`)"
        )
    return DatasetSummary(item_ids, n, k, learners, sizes, hist, len(stats))


def load_dataset(
    dataset: str | Path, engine: LocalEngine | DaskEngine
) -> tuple[DatasetSummary, list[Any]]:
    """Read every partition on the engine (one task each, results kept there) and reduce their
    sums on the driver; returns the summary and the handles of the encoded partitions."""
    uri = str(dataset) if "://" in str(dataset) else os.path.abspath(dataset)
    partitions = list_partitions(uri)
    parts = _submit(engine, _read_partition, [(uri, files) for _, files in partitions], True)
    stats = _gather(engine, _submit(engine, _part_stats, [(p,) for p in parts]))
    return _reduce(stats, uri), parts


class PartitionedEStep(ShardedEStep):
    """``ShardedEStep`` whose shards are the dataset's partitions, built by the engine's tasks
    from the encoded partitions (``load_dataset``) and kept there: the same ``run`` (sums in
    shard order, SE accumulators in ``parallel.SE_LANES`` lanes)."""

    def __init__(
        self,
        summary: DatasetSummary,
        parts: list[Any],
        theta: np.ndarray,
        logw: np.ndarray,
        engine: LocalEngine | DaskEngine,
        chunk_cells: int = 1 << 21,
        backend: str = "auto",
    ) -> None:
        self.engine = engine
        self.workers = engine.workers
        self.theta, self.logw = theta, logw
        self.n_items, self.n_learners = summary.n_items, summary.n_learners
        nnz = summary.n_responses
        self.fast_ok = nnz >= estep.FAST_MIN_RESPONSES
        dense_overall = nnz >= estep.DENSE_FRACTION * self.n_learners * 2 * self.n_items
        if backend == "auto":
            backend = (
                "torch"
                if not dense_overall and nnz >= estep.TORCH_MIN_RESPONSES and estep._torch_ok()
                else "numpy"
            )
        cache = estep.DENSE_CACHE_BYTES // len(parts)
        items = summary.item_ids
        if isinstance(engine, DaskEngine):
            [items] = engine.client.scatter([items], broadcast=True)
        args = [(p, items, theta, logw, chunk_cells, backend, cache) for p in parts]
        self.handles = _submit(engine, _build_partition_shard, args)
        parts.clear()  # the encoded partitions are released as their shards are built
        ends = np.cumsum(summary.shard_learners)
        self.rows = [np.arange(e - m, e) for e, m in zip(ends, summary.shard_learners, strict=True)]
        backends = _gather(engine, _submit(engine, _shard_backend, [(h,) for h in self.handles]))
        self.backend = "torch" if "torch" in backends else "numpy"

    def run(
        self, p: Params, *, abilities: bool = False, callback: Any = None, fast: bool = False
    ) -> tuple[float, np.ndarray, np.ndarray, np.ndarray | None]:
        """``ShardedEStep.run``; on a Dask cluster the sums are reduced on the workers (a binary
        tree over the shards, in shard order; the SE lanes' accumulators chained in lane
        order), so the driver receives one (loglik, r, w) and one accumulator, not one per
        shard: its memory does not grow with the number of partitions."""
        if not isinstance(self.engine, DaskEngine):
            return super().run(p, abilities=abilities, callback=callback, fast=fast)
        client = self.engine.client
        n = self.n_shards
        lanes = n if callback is None else min(n, SE_LANES)
        bounds = [i * n // lanes for i in range(lanes + 1)]
        lane_f = [
            client.submit(
                lane_run,
                self.handles[lo:hi],
                p,
                fast,
                abilities,
                None if callback is None else callback.fresh(),
                pure=False,
            )
            for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)
        ]
        level = [client.submit(_lane_sums, f, pure=False) for f in lane_f]
        while len(level) > 1:
            level = [
                client.submit(_add_sums, *level[i : i + 2], pure=False)
                if i + 1 < len(level)
                else level[i]
                for i in range(0, len(level), 2)
            ]
        ab = None
        if abilities:
            ab = np.empty((self.n_learners, 2))
            parts = client.gather([client.submit(_lane_abilities, f, pure=False) for f in lane_f])
            ab[:] = np.concatenate(parts) if len(parts) > 1 else parts[0]
        if callback is not None:
            merged = client.submit(_lane_acc, lane_f[0], pure=False)
            for f in lane_f[1:]:
                merged = client.submit(_merge_acc, merged, f, pure=False)
            callback.merge(merged.result())
        loglik, r, w = level[0].result()
        return loglik, r, w, ab

    def release(self) -> None:
        """Drop the shards (on a Dask cluster, the workers free them)."""
        self.handles = []


def _lane_sums(lane: tuple[list[ShardOut], Any]) -> tuple[float, np.ndarray, np.ndarray]:
    outs = lane[0]
    loglik, r, w = outs[0].loglik, outs[0].r, outs[0].w
    for o in outs[1:]:
        loglik += o.loglik
        r = r + o.r
        w = w + o.w
    return loglik, r, w


def _add_sums(
    a: tuple[float, np.ndarray, np.ndarray], b: tuple[float, np.ndarray, np.ndarray]
) -> tuple[float, np.ndarray, np.ndarray]:
    return a[0] + b[0], a[1] + b[1], a[2] + b[2]


def _lane_abilities(lane: tuple[list[ShardOut], Any]) -> np.ndarray:
    outs = lane[0]
    return np.concatenate([o.abilities for o in outs]) if len(outs) > 1 else outs[0].abilities


def _lane_acc(lane: tuple[list[ShardOut], Any]) -> Any:
    return lane[1]


def _merge_acc(acc: Any, lane: tuple[list[ShardOut], Any]) -> Any:
    """``acc`` plus the lane's accumulator (in place: ``acc`` is an intermediate of the chain,
    used by nothing else)."""
    acc.merge(lane[1])
    return acc


# ---------------------------------------------------------------- the fit


def count_warnings(summary: DatasetSummary) -> list[str]:
    """``data.data_warnings`` from the reduced counts (the same notes, in the same words)."""
    from learnops.irt.data import count_warnings as from_counts

    hist = summary.per_learner_hist
    single = int(hist[1]) if len(hist) > 1 else 0
    return from_counts(summary.item_ids, summary.n, summary.k, single)


@keeps_heap
def fit_partitioned(
    dataset: str | Path,
    model: str = "2pl",
    *,
    config: IrtConfig | None = None,
    seed: int = 0,
    progress: bool = False,
    priors: bool = True,
    se: str = "auto",
    engine: LocalEngine | DaskEngine | None = None,
) -> IrtFit:
    """``irt.fit`` on a dataset written by ``partition_responses`` (a directory or URL the
    engine's workers can read): each task reads its partition; the driver reduces sums and runs
    the M-steps. Same arguments and result as ``irt.fit`` (abilities sorted by learner id);
    ``engine`` defaults to the config's (``dask`` with ``dask_address`` for a cluster)."""
    from learnops.config import IrtConfig
    from learnops.irt.em import run_em_on, start_values
    from learnops.irt.estep import quadrature
    from learnops.irt.model import MODELS, _assemble, check_identifiable
    from learnops.irt.parallel import make_engine
    from learnops.irt.params import Priors

    cfg = config or IrtConfig()
    if model not in MODELS:
        raise LearnopsError(f"unknown IRT model {model!r} (use one of {', '.join(MODELS)})")
    if model == "heuristic":
        raise LearnopsError(
            "the heuristic baseline fits a response table, not a partitioned dataset"
        )
    t0 = time.perf_counter()
    eng = engine or make_engine(cfg.engine, cfg.workers, cfg.dask_address)
    try:
        summary, parts = load_dataset(dataset, eng)
        check_identifiable(summary, model)  # type: ignore[arg-type]
        warns = count_warnings(summary)
        pri = (
            Priors(cfg.prior_a, cfg.prior_b, cfg.prior_c if model == "3pl" else None)
            if priors
            else Priors()
        )
        theta, logw = quadrature(cfg.quad_points, cfg.quad_range)
        es = PartitionedEStep(summary, parts, theta, logw, eng)
        flops = louis_flops_from_hist(model, summary.per_learner_hist, summary.n_items, len(theta))
        start = start_values(summary.n.astype(float), summary.k.astype(float), model)
        res = run_em_on(
            es,
            model,
            start,
            flops,
            summary.n_responses,
            priors=pri,
            max_iter=cfg.max_iter,
            tol=cfg.tol,
            se=se,
            progress=progress,
        )
        es.release()
    finally:
        if engine is None:
            eng.close()
    result = _assemble(summary, model, res, pri, cfg, warns)  # type: ignore[arg-type]
    result.abilities = _sorted_by_learner(result.abilities)
    result.info["seed"] = int(seed)
    result.info["partitions"] = summary.partitions
    result.seconds = time.perf_counter() - t0
    return result


def _sorted_by_learner(abilities: pd.DataFrame) -> pd.DataFrame:
    """Rows in learner-id order (``irt.fit``'s order: the sorted unique ids)."""
    order = np.argsort(abilities["learner_id"].to_numpy(dtype=object), kind="stable")
    return abilities.iloc[order].reset_index(drop=True)
