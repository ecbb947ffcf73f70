"""LakeFSResource and settings resolution (no server needed)."""

from __future__ import annotations

import pytest

from pipelines.cli import build_parser
from pipelines.errors import FlywheelError
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
        with pytest.raises(FlywheelError, match=f"LAKEFS_TIMEOUT_S='{bad}' is not a positive number"):
            LakeFSSettings.from_env({**ENV, "LAKEFS_TIMEOUT_S": bad})


def test_resource_settings_are_its_fields() -> None:
    resource = LakeFSResource(
        endpoint=ENV["LAKEFS_ENDPOINT"],
        access_key_id="k",
        secret_access_key="s",
        repository="datasets",
        read_timeout_s=7,
    )
    settings = resource.settings()
    assert (settings.endpoint, settings.repository, settings.read_timeout_s) == (ENV["LAKEFS_ENDPOINT"], "datasets", 7)
    assert settings.namespace == "local://datasets"
    assert resource.lake.repository_id == "datasets"  # the client is built lazily, without a network call
    assert resource.env()["LAKEFS_TIMEOUT_S"] == "7" and resource.env()["LAKEFS_REPOSITORY"] == "datasets"


def test_profile_timeout_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    from resources.profiles import build_resources

    monkeypatch.setenv("FLYWHEEL_STATE_DIR", str(tmp_path))  # no stack.env to fall back on
    monkeypatch.setenv("LAKEFS_TIMEOUT_S", "12")
    assert build_resources("local")["lakefs"].read_timeout_s == 12
    monkeypatch.delenv("LAKEFS_TIMEOUT_S")
    assert build_resources("local")["lakefs"].read_timeout_s == 60
    monkeypatch.setenv("LAKEFS_TIMEOUT_S", "0")
    with pytest.raises(FlywheelError, match="LAKEFS_TIMEOUT_S='0' is not a positive number"):
        build_resources("local")


def test_cli_registers_lakefs_serve() -> None:
    args = build_parser().parse_args(["lakefs", "serve", "--port", "8123"])
    assert (args.port, args.host, args.data_dir) == (8123, "127.0.0.1", None)
