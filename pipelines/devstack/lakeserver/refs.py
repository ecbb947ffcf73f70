"""Ref expressions: a branch, a tag or a commit id (full or a unique prefix), then `~N`, `^`, `^N`
modifiers (ancestors, as in git) and an optional trailing `@` (a branch's committed state only)."""

from __future__ import annotations

import re
from typing import NamedTuple

from pipelines.devstack.lakeserver.errors import BadRequest

_BASE = re.compile(r"^[^~^@]+")
_MODIFIER = re.compile(r"(~|\^)(\d*)")
MAX_MODIFIER_DIGITS = 9  # no history is a billion commits deep; longer numbers are typos or probes


class RefExpr(NamedTuple):
    base: str
    # (kind, n): ("~", n) n-th first-parent ancestor; ("^", n) n-th parent (1-based).
    modifiers: tuple[tuple[str, int], ...]
    committed_only: bool


def parse(expr: str) -> RefExpr:
    committed_only = expr.endswith("@")
    body = expr[:-1] if committed_only else expr
    match = _BASE.match(body)
    if not match:
        raise BadRequest(f"invalid ref {expr!r}")
    rest = body[match.end() :]
    modifiers: list[tuple[str, int]] = []
    pos = 0
    while pos < len(rest):
        mod = _MODIFIER.match(rest, pos)
        if not mod:
            raise BadRequest(f"invalid ref {expr!r}: unsupported modifier at {rest[pos:]!r}")
        digits = mod.group(2)
        if len(digits) > MAX_MODIFIER_DIGITS:
            raise BadRequest(
                f"invalid ref {expr[:40]!r}...: ancestor number after {mod.group(1)!r} is too large "
                f"(at most {MAX_MODIFIER_DIGITS} digits)"
            )
        modifiers.append((mod.group(1), int(digits) if digits else 1))
        pos = mod.end()
    return RefExpr(match.group(0), tuple(modifiers), committed_only)
