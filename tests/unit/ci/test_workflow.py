"""The GitHub workflow only calls what exists: Makefile targets, the deploy kit's Dockerfiles, our own jobs."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[3]
WORKFLOW = ROOT / ".github" / "workflows" / "ci.yml"


def _steps() -> list[dict]:
    jobs = yaml.safe_load(WORKFLOW.read_text())["jobs"]
    return [step for job in jobs.values() for step in job["steps"]]


def test_every_make_target_the_workflow_runs_is_in_the_makefile() -> None:
    targets = set(re.findall(r"^([a-z][\w-]*):", (ROOT / "Makefile").read_text(), flags=re.M))
    used = {t for s in _steps() for t in re.findall(r"\bmake ([a-z][\w-]*)", s.get("run", ""))}
    assert used and used <= targets, used - targets


def test_every_image_the_workflow_builds_has_a_dockerfile() -> None:
    jobs = yaml.safe_load(WORKFLOW.read_text())["jobs"]
    images = jobs["images"]["strategy"]["matrix"]["image"]
    missing = [i for i in images if not (ROOT / "deploy" / "docker" / f"{i}.Dockerfile").is_file()]
    assert images and not missing, missing


def test_the_end_to_end_job_runs_a_job_the_definitions_have() -> None:
    from jobs import pipeline_job  # noqa: F401  (the name the workflow passes to dagster job execute)

    runs = " ".join(s.get("run", "") for s in _steps())
    assert "dagster job execute -m definitions -j pipeline_job" in runs
