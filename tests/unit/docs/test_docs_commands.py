"""The docs stay true: every `flywheel ...` command and `make ...` target that README.md and docs/*.md name exists,
and docs/architecture.svg is what docs/make_architecture_svg.py draws."""

from __future__ import annotations

import argparse
import re
import runpy
from pathlib import Path

from pipelines.cli import build_parser

ROOT = Path(__file__).resolve().parents[3]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
FENCE = re.compile(r"```[^\n]*\n(.*?)```", re.S)
SPAN = re.compile(r"`([^`\n]+)`")
# A command where a shell runs it: at the start of a line or span (after environment assignments), after `;`, `&&`,
# `|`, `(`, a `$ ` prompt, or a path ending in bin/ (`.venv/bin/flywheel`); never `kubectl -n flywheel ...`.
AT_COMMAND = r"(?:^\s*(?:[A-Z_]+=\S+ +)*|[;&|(]\s*|\$ |bin/)"
FLYWHEEL = re.compile(AT_COMMAND + r"flywheel((?: [a-z][a-z0-9-]*)+)", re.M)
MAKE = re.compile(AT_COMMAND + r"make ([a-z][a-z0-9-]*)", re.M)


def code_of(text: str) -> list[str]:
    """The code in a Markdown text: fenced blocks and inline spans (prose is not checked)."""
    blocks = FENCE.findall(text)
    return blocks + SPAN.findall(FENCE.sub("", text))


def named_commands(pattern: re.Pattern[str]) -> set[tuple[str, str]]:
    found = set()
    for doc in DOCS:
        for code in code_of(doc.read_text()):
            for match in pattern.finditer(code):
                found.add((doc.relative_to(ROOT).as_posix(), match.group(1).strip()))
    return found


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def unknown_flywheel_command(words: list[str]) -> str | None:
    """The first word of `flywheel w1 w2 ...` that is not a (sub)command, or None when the command exists."""
    parser = build_parser()
    for word in words:
        choices = subcommands(parser)
        if not choices:
            return None  # the rest are arguments
        if word not in choices:
            return word
        parser = choices[word]
    return None


def make_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text()
    return {m for line in text.splitlines() for m in re.findall(r"^([a-z][a-z0-9-]*):", line)}


def test_the_docs_name_commands_at_all() -> None:
    """The parsers find what they look for (a broken regex must not make the next tests pass vacuously)."""
    assert {"up", "produce", "dataset show", "lineage"} <= {w for _, w in named_commands(FLYWHEEL)}
    assert ("README.md", "demo") in named_commands(MAKE)


def test_every_flywheel_command_in_the_docs_exists() -> None:
    wrong = []
    for doc, words in sorted(named_commands(FLYWHEEL)):
        bad = unknown_flywheel_command(words.split())
        if bad is not None:
            wrong.append(f"{doc}: `flywheel {words}` ({bad!r} is no command)")
    assert not wrong, "\n".join(wrong)


def test_every_make_target_in_the_docs_exists() -> None:
    targets = make_targets()
    wrong = [f"{doc}: `make {t}`" for doc, t in sorted(named_commands(MAKE)) if t not in targets]
    assert not wrong, "\n".join(wrong)


def test_a_wrong_command_is_caught() -> None:
    assert unknown_flywheel_command(["dataset", "show"]) is None
    assert unknown_flywheel_command(["produce", "count"]) is None  # produce has no subcommands: arguments
    assert unknown_flywheel_command(["dataset", "replay"]) == "replay"
    assert unknown_flywheel_command(["rollback"]) == "rollback"
    found = [m.group(1).strip() for m in FLYWHEEL.finditer("kubectl -n flywheel create secret\n.venv/bin/flywheel up")]
    assert found == ["up"]
    assert [m.group(1) for m in MAKE.finditer("X=1 make test-e2e && make down; cmake foo")] == ["test-e2e", "down"]


def test_the_architecture_picture_is_current() -> None:
    script = runpy.run_path(str(ROOT / "docs" / "make_architecture_svg.py"), run_name="docs")
    assert (ROOT / "docs" / "architecture.svg").read_text() == script["render"](), (
        "rerun python docs/make_architecture_svg.py"
    )
