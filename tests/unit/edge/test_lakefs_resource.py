"""LakeFSResource and settings resolution (no server needed)."""

from __future__ import annotations

import pytest

from pipelines.cli import build_parser
from pipelines.lake import LakeError, LakeFSSettings
from resources.lakefs import LakeFSResource

ENV = {
    "LAKEFS_ENDPOINT": "http://127.0.0.1:8000",
    "LAKEFS_ACCESS_KEY_ID": "AKIAJEXAMPLE",
    "LAKEFS_SECRET_ACCESS_KEY": "secret",
}


def test_settings_from_environment_and_overrides() -> None:
    s = LakeFSSettings.from_env(ENV)
    assert (s.endpoint, s.repository, s.namespace) == ("http://127.0.0.1:8000", "flywheel", "local://flywheel")
    assert "secret" not in repr(s)
    s = LakeFSSettings.from_env({**ENV, "LAKEFS_REPOSITORY": "other", "LAKEFS_TIMEOUT_S": "5"})
    assert (s.repository, s.read_timeout_s) == ("other", 5.0)
    with pytest.raises(LakeError, match="set LAKEFS_ENDPOINT, LAKEFS_SECRET_ACCESS_KEY"):
        LakeFSSettings.from_env({"LAKEFS_ACCESS_KEY_ID": "x"})
    for bad in ("soon", "0", "-3"):
        with pytest.raises(LakeError, match=f"LAKEFS_TIMEOUT_S='{bad}' is not a timeout: give a positive number"):
            LakeFSSettings.from_env({**ENV, "LAKEFS_TIMEOUT_S": bad})


def test_resource_fields_win_and_empty_fields_fall_back_to_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    resource = LakeFSResource(repository="datasets", read_timeout_s=7)
    settings = resource.settings()
    assert (settings.endpoint, settings.repository, settings.read_timeout_s) == (ENV["LAKEFS_ENDPOINT"], "datasets", 7)
    assert LakeFSResource.from_env().access_key_id == "AKIAJEXAMPLE"
    assert resource.lake.repository_id == "datasets"  # the client is built lazily, without a network call


def test_resource_default_timeout_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("FLYWHEEL_STATE_DIR", str(tmp_path))  # no stack.env to fall back on
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("LAKEFS_TIMEOUT_S", "12")
    assert LakeFSResource().settings().read_timeout_s == 12
    monkeypatch.delenv("LAKEFS_TIMEOUT_S")
    assert LakeFSResource().settings().read_timeout_s == 60


def test_cli_registers_lakefs_serve() -> None:
    args = build_parser().parse_args(["lakefs", "serve", "--port", "8123"])
    assert (args.port, args.host, args.data_dir) == (8123, "127.0.0.1", None)
