"""Unit tests start no server: the embedded stack's fixtures are refused here (use tests/integration)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def stack_env() -> None:
    pytest.fail("unit tests must not start the embedded stack: move this test under tests/integration/")
