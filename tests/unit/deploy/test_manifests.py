"""deploy/ holds real manifests: every Kubernetes document validates against the Kubernetes schemas (strict)."""

from __future__ import annotations

from pathlib import Path

import kubernetes_validate
import pytest
import yaml

DEPLOY = Path(__file__).resolve().parents[3] / "deploy"
K8S_VERSION = "1.31.0"
MANIFESTS = sorted((DEPLOY / "k8s").rglob("*.yaml"))


def documents(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: str(p.relative_to(DEPLOY)))
def test_kubernetes_manifests_validate(path: Path) -> None:
    docs = documents(path)
    assert docs, f"{path} holds no documents"
    for doc in docs:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_schema_validation_really_rejects_a_broken_manifest() -> None:
    bad = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "x"}, "automountToken": False}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, K8S_VERSION, strict=True)


def test_rbac_grants_the_launcher_what_it_uses() -> None:
    docs = documents(DEPLOY / "k8s/base/rbac.yaml")
    role = next(d for d in docs if d["kind"] == "Role")
    granted = {(g, r) for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"]}
    assert {("", "pods"), ("", "pods/log"), ("", "services"), ("batch", "jobs")} <= granted


def test_compose_stack_is_consistent() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert {"kafka", "lakefs", "mlflow", "postgres", "dagster-webserver", "dagster-daemon", "dagster-code", "minio",
            "serving", "prometheus", "grafana", "exporter", "valkey", "feature-updater"} <= set(services)  # fmt: skip
    for name, service in services.items():
        build = service.get("build")
        if build:  # the Dockerfile it builds exists, relative to its context
            context = (DEPLOY / build["context"]).resolve()
            assert (context / build["dockerfile"]).is_file(), f"{name}: no {build['dockerfile']} in {context}"
        for volume in service.get("volumes", []):
            source = str(volume).split(":")[0]
            if source.startswith("."):  # a bind mount of a file of the kit
                assert (DEPLOY / source).exists(), f"{name} mounts {source}, which does not exist"
            else:
                assert source in compose["volumes"], f"{name} uses undeclared volume {source}"
    env = compose["x-flywheel-env"]
    for key in ("KAFKA_BOOTSTRAP_SERVERS", "LAKEFS_ENDPOINT", "MLFLOW_TRACKING_URI"):
        host = env[key].split("//")[-1].split(":")[0]
        assert host in services, f"{key} points at {host}, which is not a compose service"
    for name, service in services.items():
        for dep in service.get("depends_on", []):
            assert dep in services, f"{name} depends on unknown service {dep}"


def test_helm_values_use_our_code_location() -> None:
    values = yaml.safe_load((DEPLOY / "helm/dagster-values.yaml").read_text())
    deployment = values["dagster-user-deployments"]["deployments"][0]
    assert deployment["dagsterApiGrpcArgs"] == ["-m", "definitions", "-a", "defs"]
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
