"""The Kubernetes workloads of deploy/k8s wire up as the interfaces agreed: serving's probes, Secret-backed admin
token, alias polling, Service/PDB/HPA/PodMonitor selectors; every container command is a command the `flywheel`
CLI accepts; RBAC is least privilege (no Secrets at all, no wildcards) and the admission policy admits exactly the
Secrets the training pods name."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipelines.cli import build_parser
from pipelines.training import k8s
from resources.training import K8sTrainingLauncher

DEPLOY = Path(__file__).resolve().parents[3] / "deploy"


def documents(pattern: str) -> list[dict]:
    return [d for path in sorted(DEPLOY.glob(pattern)) for d in yaml.safe_load_all(path.read_text()) if d]


def one(kind: str, name: str) -> dict:
    return next(d for d in documents("k8s/**/*.y*ml") if d["kind"] == kind and d["metadata"]["name"] == name)


def container(deployment: dict) -> dict[str, Any]:
    (c,) = deployment["spec"]["template"]["spec"]["containers"]
    return c


def env_of(c: dict) -> dict[str, dict]:
    return {e["name"]: e for e in c.get("env", [])}


DEPLOYMENTS = [d for d in documents("k8s/**/*.yaml") if d["kind"] == "Deployment"]
WORKLOADS = DEPLOYMENTS + [d for d in documents("k8s/features/*.yaml") if d["kind"] == "Job"]


def test_serving_probes_follow_the_agreed_endpoints() -> None:
    c = container(one("Deployment", "flywheel-serving"))
    assert c["command"] == ["flywheel", "serve", "--host", "0.0.0.0", "--port", "8080"]
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"  # 503 until a champion is loaded
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert c["resources"]["requests"]["cpu"] and c["resources"]["limits"]["memory"]
    env = env_of(c)
    assert env["FLYWHEEL_SERVING_ADMIN_TOKEN"]["valueFrom"]["secretKeyRef"] == {
        "name": "flywheel-serving",
        "key": "FLYWHEEL_SERVING_ADMIN_TOKEN",  # the env name: run pods take the same Secret with envFrom
    }
    assert int(env["FLYWHEEL_SERVING_POLL_SECONDS"]["value"]) > 0
    assert "secretKeyRef" in env["FLYWHEEL_ONLINE_STORE_URL"]["valueFrom"]  # the URL carries the password


def test_service_pdb_hpa_and_podmonitors_select_the_right_pods() -> None:
    serving = one("Deployment", "flywheel-serving")
    labels = serving["spec"]["template"]["metadata"]["labels"]
    port_names = {p["name"] for p in container(serving)["ports"]}
    service = one("Service", "flywheel-serving")
    assert service["spec"]["selector"].items() <= labels.items()
    assert service["spec"]["ports"][0]["targetPort"] in port_names
    assert one("PodDisruptionBudget", "flywheel-serving")["spec"]["selector"]["matchLabels"].items() <= labels.items()
    target = one("HorizontalPodAutoscaler", "flywheel-serving")["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", "flywheel-serving")
    assert serving["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"] == "8080"
    monitors = {d["metadata"]["name"]: d for d in documents("k8s/observability/*.yml") if d["kind"] == "PodMonitor"}
    for name, deployment in (
        ("flywheel-serving", serving),
        ("flywheel-exporter", one("Deployment", "flywheel-exporter")),
        ("flywheel-feature-updater", one("Deployment", "flywheel-feature-updater")),
    ):
        spec = monitors[name]["spec"]
        pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert spec["selector"]["matchLabels"].items() <= pod_labels.items(), name
        ports = {p["name"] for p in container(deployment)["ports"]}
        assert {e["port"] for e in spec["podMetricsEndpoints"]} <= ports, name


@pytest.mark.parametrize("deployment", WORKLOADS, ids=lambda d: d["metadata"]["name"])
def test_every_command_is_one_the_cli_accepts(deployment: dict) -> None:
    command = container(deployment)["command"]
    assert command[0] == "flywheel"
    args = build_parser().parse_args(command[1:])  # exits (SystemExit) on an unknown command or option
    assert callable(args.func)


@pytest.mark.parametrize("deployment", WORKLOADS, ids=lambda d: d["metadata"]["name"])
def test_workloads_get_no_api_token_and_a_declared_service_account(deployment: dict) -> None:
    spec = deployment["spec"]["template"]["spec"]
    assert spec["automountServiceAccountToken"] is False
    accounts = {d["metadata"]["name"] for d in documents("k8s/base/rbac.yaml") if d["kind"] == "ServiceAccount"}
    assert spec["serviceAccountName"] in accounts


def test_rbac_is_least_privilege() -> None:
    roles = [d for d in documents("k8s/**/*.yaml") if d["kind"] in ("Role", "ClusterRole")]
    assert roles
    for role in roles:
        for rule in role["rules"]:
            assert "*" not in rule["verbs"] and "*" not in rule["resources"], role["metadata"]["name"]
            assert "secrets" not in rule["resources"], f"{role['metadata']['name']} may read Secrets"
    assert not [d for d in documents("k8s/**/*.yaml") if d["kind"] == "ClusterRoleBinding"]


def test_admission_policy_admits_exactly_the_secrets_each_account_s_pods_name() -> None:
    policy = one("ValidatingAdmissionPolicy", "flywheel-pod-secrets")
    allowed = next(v["expression"] for v in policy["spec"]["variables"] if v["name"] == "allowed")
    runner_list, launcher_list = (set(re.findall(r"'([\w-]+)'", lst)) for lst in re.findall(r"\[([^\]]*)\]", allowed))
    runner, launcher = "system:serviceaccount:flywheel:flywheel-runner", "system:serviceaccount:flywheel:dagster"
    assert f"'{runner}' ?" in allowed.replace("\n", " ")  # the first list is the runner's
    # flywheel-runner creates training pods: exactly the Secrets they name
    training = set(k8s.TrainingPodConfig(name="x", image="i", entry_args=[]).secrets)
    assert runner_list == training | set(K8sTrainingLauncher().secrets)
    # the chart's account (the K8sRunLauncher in the daemon) creates run Jobs: their envSecrets and the DB password
    values = yaml.safe_load((DEPLOY / "helm/dagster-values.yaml").read_text())
    launcher_cfg = values["runLauncher"]["config"]["k8sRunLauncher"]
    assert launcher_list == {s["name"] for s in launcher_cfg["envSecrets"]} | {values["global"]["postgresqlSecretName"]}
    instance = yaml.safe_load((DEPLOY / "dagster/dagster.yaml").read_text())["run_launcher"]["config"]
    assert launcher_list == set(instance["env_secrets"]) | {instance["postgres_password_secret"]}
    condition = policy["spec"]["matchConditions"][0]["expression"]
    assert runner in condition and launcher in condition
    assert values["global"]["serviceAccountName"] == launcher.rsplit(":", 1)[1]
    assert launcher_cfg["runK8sConfig"]["podSpecConfig"]["serviceAccountName"] == runner.rsplit(":", 1)[1]
    binding = one("ValidatingAdmissionPolicyBinding", "flywheel-pod-secrets")
    assert binding["spec"]["policyName"] == "flywheel-pod-secrets"
    assert binding["spec"]["validationActions"] == ["Deny"]
