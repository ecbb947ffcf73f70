"""deploy/ ships no credential and exposes nothing by default: Docker Compose publishes on 127.0.0.1 only
and reads every credential from a git-ignored deploy/.env; the Helm values take the database password
from an existing Secret; every Secret the deployment references is documented in deploy/README.md."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from pipelines.training import k8s
from resources.training import K8sTrainingLauncher

ROOT = Path(__file__).resolve().parents[3]
DEPLOY = ROOT / "deploy"
COMPOSE_TEXT = (DEPLOY / "compose.yaml").read_text()
COMPOSE = yaml.safe_load(COMPOSE_TEXT)
VALUES = yaml.safe_load((DEPLOY / "helm/dagster-values.yaml").read_text())
CREDENTIAL_NAME = re.compile(r"PASSWORD|SECRET|ACCESS_KEY|TOKEN|CONNECTION_STRING|BACKEND_STORE_URI")
# Published example credentials (AWS's documentation key pair, the old compose defaults).
KNOWN_EXAMPLES = ("AKIAIOSFOLQUICKSTART", "wJalrXUtnFEMI", "change-me-in-production", "flywheel:flywheel@")


def environments() -> list[tuple[str, dict]]:
    envs = [("x-flywheel-env", COMPOSE["x-flywheel-env"])]
    services = COMPOSE["services"].items()
    envs += [(name, s["environment"]) for name, s in services if isinstance(s.get("environment"), dict)]
    return envs


def test_compose_publishes_ports_on_localhost_only() -> None:
    published = [(name, port) for name, s in COMPOSE["services"].items() for port in s.get("ports", [])]
    assert {name for name, _ in published} >= {"lakefs", "mlflow", "dagster-webserver"}
    for name, port in published:
        assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} on every interface"


def test_compose_reads_every_credential_from_the_env_file() -> None:
    for where, env in environments():
        for key, value in env.items():
            if CREDENTIAL_NAME.search(key):
                assert "${" in str(value), f"{where}: {key} is a literal, not read from deploy/.env"
    for example in KNOWN_EXAMPLES:
        assert example not in COMPOSE_TEXT
    for userinfo in re.findall(r"://[^/@\s]+:([^/@\s]+)@", COMPOSE_TEXT):  # passwords inside URLs
        assert userinfo.startswith("${"), f"a literal password in a URL: {userinfo}"
    commands = " ".join(str(s.get("command", "")) for s in COMPOSE["services"].values())
    assert "${" not in commands and "://" not in commands.replace("0.0.0.0", "")  # no secrets in `ps` output


def test_env_example_names_every_required_variable_and_holds_no_value() -> None:
    required = set(re.findall(r"\$\{([A-Z0-9_]+):\?", COMPOSE_TEXT))
    assert required >= {"POSTGRES_PASSWORD", "LAKEFS_ACCESS_KEY_ID", "LAKEFS_SECRET_ACCESS_KEY"}
    lines = [ln for ln in (DEPLOY / ".env.example").read_text().splitlines() if ln and not ln.startswith("#")]
    example = dict(ln.split("=", 1) for ln in lines)
    assert set(example) == required
    assert all(value == "" for value in example.values()), "the example must not ship credentials"


def test_env_file_is_ignored_by_git() -> None:
    if shutil.which("git") and (ROOT / ".git").exists():
        ignored = subprocess.run(["git", "check-ignore", "-q", "deploy/.env"], cwd=ROOT, timeout=30)
        assert ignored.returncode == 0, "deploy/.env would be committed"
        shipped = subprocess.run(["git", "check-ignore", "-q", "deploy/.env.example"], cwd=ROOT, timeout=30)
        assert shipped.returncode == 1, "deploy/.env.example must stay in the repository"
    else:
        assert ".env" in (ROOT / ".gitignore").read_text().splitlines()


def test_helm_values_take_the_database_password_from_an_existing_secret() -> None:
    assert VALUES["generatePostgresqlPasswordSecret"] is False  # the chart never writes its own password
    assert VALUES["global"]["postgresqlSecretName"]
    assert VALUES["postgresql"]["enabled"] is False  # nor runs its bundled PostgreSQL (default password)
    assert VALUES["postgresql"].get("postgresqlPassword", "") == ""


def _secret_names(node: Any) -> set[str]:
    if isinstance(node, dict):
        names = {s["name"] for s in node.get("envSecrets") or [] if isinstance(s, dict)}
        for value in node.values():
            names |= _secret_names(value)
        return names
    if isinstance(node, list):
        return set().union(*(_secret_names(v) for v in node)) if node else set()
    return set()


def _manifest_secret_names(node: Any) -> set[str]:
    """Secrets a Kubernetes manifest references: secretKeyRef, envFrom secretRef, secret volumes."""
    names: set[str] = set()
    if isinstance(node, dict):
        for key in ("secretKeyRef", "secretRef"):
            if isinstance(node.get(key), dict):
                names.add(node[key]["name"])
        if isinstance(node.get("secret"), dict) and "secretName" in node["secret"]:
            names.add(node["secret"]["secretName"])
        for value in node.values():
            names |= _manifest_secret_names(value)
    elif isinstance(node, list):
        for value in node:
            names |= _manifest_secret_names(value)
    return names


def test_every_referenced_secret_is_documented() -> None:
    names = _secret_names(VALUES) | {VALUES["global"]["postgresqlSecretName"]}
    for path in sorted((DEPLOY / "k8s").rglob("*.y*ml")):
        names |= _manifest_secret_names(list(yaml.safe_load_all(path.read_text())))
    instance = yaml.safe_load((DEPLOY / "dagster/dagster.yaml").read_text())["run_launcher"]["config"]
    names |= set(instance["env_secrets"]) | {instance["postgres_password_secret"]}
    assert {"flywheel-serving", "flywheel-online-store"} <= names
    names |= set(k8s.TrainingPodConfig(name="x", image="i", entry_args=[]).secrets)
    names |= set(K8sTrainingLauncher().secrets)
    assert names >= {"flywheel-lakefs", "flywheel-mlflow", "flywheel-dagster-postgresql"}
    readme = (DEPLOY / "README.md").read_text()
    secrets_table = readme[readme.index("## Secrets") :]
    for name in names:
        assert f"| `{name}` |" in secrets_table, f"Secret {name} is not in deploy/README.md's Secrets table"
    for key in ("postgresql-password", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "LAKEFS_ACCESS_KEY_ID"):
        assert key in secrets_table
