"""Everything under tests/integration talks to real servers (the embedded stack, a lakeFS server process,
the fake Kubernetes API server): mark it all `integration`, so `-m "not integration"` starts none."""

from __future__ import annotations

import uuid
from dataclasses import replace
from pathlib import Path

import pytest

from pipelines.lake import Lake, LakeFSSettings
from pipelines.spec import load_spec
from pipelines.training.synthetic import write_dataset

HERE = Path(__file__).resolve().parent
ROWS = 4000  # the synthetic model table of the training and evaluation tests


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def dataset_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("training-data"), load_spec("transactions"), ROWS, seed=3, vocab=True)


@pytest.fixture(scope="session")
def lake_commit(stack_env: dict[str, str], dataset_dir: Path) -> tuple[Lake, str]:
    """The synthetic table committed to `main` of a fresh lakeFS repository; returns (lake, commit id)."""
    settings = replace(LakeFSSettings.from_env(), repository=f"training-{uuid.uuid4().hex[:8]}")
    lake = Lake(settings)
    lake.ensure_repository()
    for path in sorted(dataset_dir.rglob("*")):
        if path.is_file():
            lake.write_bytes("main", path.relative_to(dataset_dir).as_posix(), path.read_bytes())
    commit = lake.commit("main", "synthetic training table")
    return lake, commit
