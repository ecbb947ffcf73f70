"""checkov (IaC static analysis) passes on deploy/: the Kubernetes manifests, the Dockerfiles and a secrets scan.
Every check skipped is skipped where it applies with its reason (a checkov.io/skipN annotation on the resource, a
`# checkov:skip=` comment), and the test sees that reason. A known-bad Deployment and Dockerfile, scanned in the
same run, must fail, so a scan that silently checks nothing cannot pass.

checkov lives in its own virtualenv (.venv-checkov, `make checkov`; `make test` depends on it): its pinned
requirements would downgrade packages of .venv. Frameworks: kubernetes, dockerfile, secrets; the others
(terraform, cloudformation, ...) have nothing to scan here (cloudformation would only misparse YAML files).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
CHECKOV = Path(os.environ.get("FLYWHEEL_CHECKOV", ROOT / ".venv-checkov/bin/checkov"))
FRAMEWORKS = ["kubernetes", "dockerfile", "secrets"]

BAD_DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: bad, namespace: flywheel}
spec:
  selector: {matchLabels: {app: bad}}
  template:
    metadata: {labels: {app: bad}}
    spec:
      containers:
        - name: bad
          image: bad:latest
          securityContext: {privileged: true, allowPrivilegeEscalation: true}
"""
BAD_DOCKERFILE = "FROM python:latest\nRUN pip install flask\nCMD python -m flask run\n"


@pytest.fixture(scope="module")
def scan(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, list[dict], Path]:
    if not CHECKOV.exists():
        pytest.fail(f"checkov is not installed at {CHECKOV}: run `make checkov` (make test does it)")
    bad = tmp_path_factory.mktemp("bad-iac")
    (bad / "deployment.yaml").write_text(BAD_DEPLOYMENT)
    (bad / "Dockerfile").write_text(BAD_DOCKERFILE)
    cmd = [str(CHECKOV), "-d", str(ROOT / "deploy"), "-d", str(bad), "--framework", *FRAMEWORKS]
    cmd += ["--skip-download", "--output", "json", "--compact"]
    env = {**os.environ, "HOME": str(tmp_path_factory.mktemp("home")), "LOG_LEVEL": "ERROR"}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env, cwd=ROOT)
    reports = json_documents(done.stdout)
    if not reports:
        pytest.fail(f"checkov printed no JSON (exit {done.returncode}): {done.stderr[-2000:]}")
    return done.returncode, reports, bad


def json_documents(text: str) -> list[dict]:
    """checkov prints one JSON document per scanned directory (a report, a list of reports or a bare summary)."""
    decoder, reports, at = json.JSONDecoder(), [], 0
    while (at := _skip_space(text, at)) < len(text):
        doc, at = decoder.raw_decode(text, at)
        reports += doc if isinstance(doc, list) else [doc]
    return reports


def _skip_space(text: str, at: int) -> int:
    while at < len(text) and text[at].isspace():
        at += 1
    return at


def checks(reports: list[dict], kind: str) -> list[dict]:
    return [c for r in reports for c in (r.get("results") or {}).get(kind, [])]


def in_deploy(check: dict, bad: Path) -> bool:
    return not str(check.get("repo_file_path", check["file_path"])).startswith(str(bad)) and bad.name not in str(
        check.get("file_abs_path", "")
    )


def test_deploy_passes_checkov(scan: tuple[int, list[dict], Path]) -> None:
    _, reports, bad = scan
    failed = [c for c in checks(reports, "failed_checks") if in_deploy(c, bad)]
    assert not failed, [f"{c['check_id']} {c['check_name']} in {c['file_path']} ({c['resource']})" for c in failed]
    assert not any(r.get("summary", r).get("parsing_errors") for r in reports), "checkov could not parse a file"
    scanned: dict[str, int] = {}
    for r in reports:  # both directories' reports: the bad one adds 1 Deployment and 1 Dockerfile
        kind = r.get("check_type", "")
        scanned[kind] = scanned.get(kind, 0) + r.get("summary", {}).get("resource_count", 0)
    assert scanned.get("kubernetes", 0) >= 20 and scanned.get("dockerfile", 0) >= 5, scanned


def test_every_skipped_check_says_why(scan: tuple[int, list[dict], Path]) -> None:
    _, reports, _ = scan
    skipped = checks(reports, "skipped_checks")
    assert skipped, "no skip seen: the annotations are not read"
    for c in skipped:
        reason = (c.get("check_result") or {}).get("suppress_comment") or ""
        assert len(reason) >= 20, f"{c['check_id']} skipped on {c['resource']} without a reason"


def test_the_scan_fails_a_bad_deployment_and_dockerfile(scan: tuple[int, list[dict], Path]) -> None:
    code, reports, bad = scan
    assert code != 0
    found = {c["check_id"] for c in checks(reports, "failed_checks") if not in_deploy(c, bad)}
    assert {"CKV_K8S_16", "CKV_K8S_20"} <= found  # privileged, allowPrivilegeEscalation
    assert "CKV_DOCKER_3" in found  # no non-root USER
