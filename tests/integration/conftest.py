"""Everything under tests/integration talks to real servers (the embedded stack, a lakeFS server process,
the fake Kubernetes API server): mark it all `integration`, so `-m "not integration"` starts none."""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.integration)
