"""Run in a child process by test_spark_connect.py: the model-table query through the Spark Connect server at
SPARK_REMOTE (a Connect session marks its whole process as Connect mode, so the test process stays clean).

    python connect_query.py OUT_DIR RAW_FILE...

Writes OUT_DIR/from_files.parquet (the server reads the raw files: it shares this disk) and
OUT_DIR/from_arrow.parquet (the rows shipped as Arrow, as for a remote cluster), and OUT_DIR/session.txt.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import pyarrow.parquet as pq

from pipelines.features.build import model_table, read_raw
from pipelines.spark import connect_or_local, is_remote, shares_disk
from pipelines.spec import load_spec


def main() -> None:
    logging.basicConfig(level=logging.INFO)  # the line saying which Spark answered, on stderr
    out, files = Path(sys.argv[1]), [Path(f) for f in sys.argv[2:]]
    spec = load_spec("transactions")
    spark = connect_or_local(os.environ["SPARK_REMOTE"], None, allow_fallback=False)
    (out / "session.txt").write_text(f"remote={is_remote(spark)} shares_disk={shares_disk(spark)}")
    raw = read_raw(files, spec)
    pq.write_table(model_table(spark, spec, raw, files), out / "from_files.parquet")
    pq.write_table(model_table(spark, spec, raw.combine_chunks()), out / "from_arrow.parquet")


if __name__ == "__main__":
    main()
