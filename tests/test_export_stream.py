"""Streaming export (issue 16): chunked reads, day row groups, byte stability across chunk sizes,
and the same table as the one-piece export."""

import pandas as pd
import pyarrow.parquet as pq
import pytest

from learnops.config import ExportConfig
from learnops.data.export import SORT_KEYS, export, sort_rows
from learnops.data.schemas import validate_decisions, validate_responses

ALL = ExportConfig(last_days=None, min_data_points=1)


@pytest.fixture
def filled(store, small_sim):
    store.insert_responses(small_sim.responses)
    store.insert_decisions(small_sim.decisions)
    return store


def _one_piece(store, name, limit=None):
    """The export as it was before streaming: the whole window read into pandas at once."""
    if name == "decisions":
        return sort_rows(validate_decisions(store.read_decisions(limit=limit)), SORT_KEYS[name])
    return sort_rows(validate_responses(store.read_responses(limit=limit)), SORT_KEYS[name])


def test_streamed_export_is_the_one_piece_table_in_day_row_groups(filled, tmp_path):
    res = export(filled, ALL, tmp_path, chunk_rows=1999, row_group_rows=64)
    # the bytes depend on the rows only, not on how they were chunked
    export(filled, ALL, tmp_path / "whole", chunk_rows=100_000, row_group_rows=64)
    for name in ("decisions.parquet", "responses.parquet"):
        assert (tmp_path / name).read_bytes() == (tmp_path / "whole" / name).read_bytes()
    for name in ("decisions", "responses"):
        path = tmp_path / f"{name}.parquet"
        # pandas reads the file as one table, equal (values and dtypes) to the one-piece export
        pd.testing.assert_frame_equal(pd.read_parquet(path), _one_piece(filled, name))
        assert res.counts[name] == len(_one_piece(filled, name))
        meta = pq.ParquetFile(path).metadata
        assert meta.num_row_groups > 1
        ts_col = meta.schema.names.index("timestamp")
        for i in range(meta.num_row_groups):
            rg = meta.row_group(i)
            assert rg.num_rows <= 64
            stats = rg.column(ts_col).statistics
            assert pd.Timestamp(stats.min).floor("D") == pd.Timestamp(stats.max).floor("D")
    summary = res.summary()
    dec, resp = _one_piece(filled, "decisions"), _one_piece(filled, "responses")
    assert summary["n_learners"] == pd.concat([dec.learner_hash, resp.learner_hash]).nunique()
    assert summary["n_items"] == resp["item_id"].nunique()


def test_reads_are_chunked_and_limit_keeps_the_newest_rows(filled, tmp_path, monkeypatch):
    import learnops.data.export as ex

    seen = []
    validate = ex.validate_decisions

    def spy(df):
        seen.append(len(df))
        return validate(df)

    monkeypatch.setattr(ex, "validate_decisions", spy)
    res = export(filled, ExportConfig(last_days=None, min_data_points=1, limit=1000), tmp_path,
                 chunk_rows=150)  # fmt: skip
    assert max(seen[1:]) <= 150 and sum(seen[1:]) == 1000  # seen[0]: the schema's empty table
    pd.testing.assert_frame_equal(res.decisions, _one_piece(filled, "decisions", limit=1000))
