"""pipelines/redact.py: credentials never reach what is displayed (metadata, logs, messages, pod specs)."""

from __future__ import annotations

import pytest

from pipelines.redact import redact_url, split_userinfo


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("https://alice:s3cr3t@mlflow.example.com", "https://mlflow.example.com"),
        ("http://alice:p@ss@mlflow:5000/api?x=1", "http://mlflow:5000/api?x=1"),  # "@" inside the password
        ("http://token@mlflow:5000/", "http://mlflow:5000/"),
        ("https://h/run?token=abc&x=1", "https://h/run?token=***&x=1"),
        ("https://b.s3/k?X-Amz-Credential=AKIA&X-Amz-Signature=ff&X-Amz-Date=1", None),
        ("API request to http://u:pw@mlflow/api/2.0/runs failed; retry http://u:pw@mlflow/x", None),
        ("http://mlflow.mlflow.svc:5000", "http://mlflow.mlflow.svc:5000"),
        ("http://host/path@v2", "http://host/path@v2"),  # an "@" in the path is not userinfo
        ("databricks://profile", "databricks://profile"),
        ("file:///tmp/mlruns", "file:///tmp/mlruns"),
        ("no url here: user@example.com", "no url here: user@example.com"),
    ],
)
def test_redact_url(text: str, shown: str | None) -> None:
    out = redact_url(text)
    if shown is not None:
        assert out == shown
    for secret in ("s3cr3t", "p@ss", "pw@", "AKIA", "Signature=ff", "token=abc", "token@"):
        assert secret not in out
    assert redact_url(out) == out  # idempotent


def test_split_userinfo_gives_mlflow_its_username_and_password() -> None:
    assert split_userinfo("https://alice:s%40cret@mlflow.example.com/") == (
        "https://mlflow.example.com/",
        "alice",
        "s@cret",
    )
    assert split_userinfo("https://token-only@mlflow") == ("https://mlflow", "token-only", None)
    assert split_userinfo("http://mlflow:5000") == ("http://mlflow:5000", None, None)
