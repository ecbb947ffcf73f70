"""A real server process against clients that misbehave on the wire: it answers 4xx early and stays up."""

from __future__ import annotations

import select
import socket

import httpx
import pytest

from pipelines.devstack.lakeserver.server import MAX_HEADER_BYTES

from .conftest import Server

PIECE = 64 * 1024
TOTAL = 8 * 1024 * 1024


def _send_until_answered(port: int, head: bytes, filler: bytes) -> tuple[int, bytes]:
    """Sends head, then filler in 64 KiB pieces (up to 8 MiB), until the server answers or hangs up.

    Returns (bytes of filler sent, what the server answered). Between pieces it gives the server up to
    50 ms to answer, so a server that reads the whole 8 MiB before answering shows as `sent == TOTAL`.
    """
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head)
        while sent < TOTAL:
            readable, _, _ = select.select([sock], [], [], 0.05)
            if readable:
                break
            try:
                sock.sendall(filler * (PIECE // len(filler)))
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += PIECE
        sock.settimeout(5)
        try:
            answer = sock.recv(4096)
        except (ConnectionResetError, TimeoutError):
            answer = b""
    return sent, answer


@pytest.mark.parametrize(
    ("what", "head", "filler"),
    [
        ("one huge header", b"GET /api/v1/repositories HTTP/1.1\r\nHost: x\r\nX-Big: ", b"a"),
        ("many headers", b"GET /api/v1/repositories HTTP/1.1\r\nHost: x\r\n", b"X-Many: 0123456789abcd\r\n"),
        ("a huge URL", b"GET /api/v1/repositories?prefix=", b"a"),
    ],
)
def test_an_oversized_request_head_is_refused_early(lakefs_server: Server, what: str, head: bytes, filler: bytes):
    sent, answer = _send_until_answered(lakefs_server.port, head, filler)
    assert sent < TOTAL // 4, f"{what}: the server read {sent} bytes of request head without answering"
    assert sent >= MAX_HEADER_BYTES - PIECE  # ...and not refused before the limit
    assert answer.startswith(b"HTTP/1.1 4"), (what, answer[:200])
    # The server is still up and serves a normal request.
    auth = lakefs_server.credentials
    assert httpx.get(f"{lakefs_server.endpoint}/api/v1/repositories", auth=auth, timeout=10).status_code == 200


def test_a_head_just_under_the_limit_is_served(lakefs_server: Server) -> None:
    padding = "a" * (MAX_HEADER_BYTES - 2048)
    auth = lakefs_server.credentials
    answer = httpx.get(
        f"{lakefs_server.endpoint}/api/v1/repositories", auth=auth, headers={"X-Pad": padding}, timeout=10
    )
    assert answer.status_code == 200
