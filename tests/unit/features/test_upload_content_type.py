"""A batch's files go to lakeFS with their own content type: the id filter's raw bits are not Parquet."""

from __future__ import annotations

from pipelines import layout
from pipelines.features.stage import OCTET_STREAM, PARQUET, content_type
from pipelines.spec import load_spec


def test_each_batch_file_has_its_content_type() -> None:
    spec = load_spec("transactions")
    assert content_type(layout.id_filter_path(spec, 3)) == OCTET_STREAM == "application/octet-stream"
    assert content_type(layout.id_index_path(spec, 3)) == PARQUET
    assert content_type(layout.feature_batch_prefix(spec, 3) + "part-00000.parquet") == PARQUET
