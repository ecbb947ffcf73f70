"""Spark's class archive: written once by a child JVM at its exit, then mapped by later sessions."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.devstack import spark_archive as cds

pytestmark = pytest.mark.integration

# -Xshare:on makes a JVM refuse to start when it cannot map the archive (-Xshare:auto would carry on without).
MAPPED_QUERY = (
    "from pipelines.spark import spark_session; "
    "s = spark_session(master='local[1]', conf={'spark.driver.extraJavaOptions': '-Xshare:on'}); "
    "print('count', s.range(5).count())"
)


def test_archive_is_written_once_and_mapped_by_later_sessions(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("FLYWHEEL_STATE_DIR", str(tmp_path))
    path = cds.write_archive()
    assert path.is_file() and path.stat().st_size > 1_000_000
    assert not list(path.parent.glob("*.tmp"))
    assert cds.write_archive() == path  # there already: nothing to do

    mapped = subprocess.run(
        [sys.executable, "-c", MAPPED_QUERY],
        env={**os.environ, "FLYWHEEL_STATE_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert mapped.returncode == 0, mapped.stderr[-2000:]
    assert "count 5" in mapped.stdout
