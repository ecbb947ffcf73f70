"""What the server says before serving: `serve` runs up to uvicorn, with the socket and uvicorn stubbed."""

from __future__ import annotations

import pytest

from pipelines.devstack.lakeserver import server


@pytest.fixture
def served(monkeypatch) -> list[tuple]:
    calls: list[tuple] = []
    monkeypatch.setattr(server, "bind", lambda host, port: _NoSocket())
    monkeypatch.setattr(server, "_serve_locked", lambda *args: calls.append(args))
    return calls


class _NoSocket:
    def close(self) -> None:
        pass


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "lake.example.com"])
def test_a_host_other_machines_reach_warns_that_credentials_travel_in_clear(host, served, tmp_path, capsys) -> None:
    server.serve(tmp_path, host, 1)
    assert served and served[0][2] == host  # it still serves: a warning, not a refusal
    err = capsys.readouterr().err
    assert err.startswith(f"lakeserver: warning: listening on {host}")
    assert "clear text" in err and "TLS" in err and "--host 127.0.0.1" in err


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_a_loopback_host_serves_quietly(host, served, tmp_path, capsys) -> None:
    server.serve(tmp_path, host, 1)
    assert served and capsys.readouterr().err == ""
