"""The pods that exist only at run time, built by the real code that builds them, and the admission policy
evaluated on them (its CEL run by cel-python, as the API server would run it):
  - Dagster run Jobs, built by dagster-k8s's `construct_dagster_k8s_job` from deploy/dagster/dagster.yaml and from
    the Helm values' run launcher settings, meet the restricted Pod Security Standard and the Kubernetes schemas;
  - training pods and Jobs built by pipelines/training/k8s.py, created by flywheel-runner, are admitted; run Jobs,
    created by the chart's `dagster` account, are admitted; either one naming any other Secret (env, envFrom,
    a secret or projected volume) is refused; pods created by anyone else are not the policy's business.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import celpy
import kubernetes
import kubernetes_validate
import pytest
import yaml
from dagster_k8s.job import DagsterK8sJobConfig, UserDefinedDagsterK8sConfig, construct_dagster_k8s_job

from pipelines.training import k8s
from tests.unit.deploy.test_pod_security import restricted_violations

DEPLOY = Path(__file__).resolve().parents[3] / "deploy"
RUNNER = "system:serviceaccount:flywheel:flywheel-runner"
LAUNCHER = "system:serviceaccount:flywheel:dagster"
POLICY = next(d for d in yaml.safe_load_all((DEPLOY / "k8s/base/admission-policy.yaml").read_text()) if d)["spec"]


def run_job(
    env_secrets: list[str], postgres_secret: str, run_k8s_config: dict[str, Any], service_account: str | None
) -> dict:
    """The run Job the K8sRunLauncher creates for a run, as a plain manifest."""
    config = DagsterK8sJobConfig(
        job_image="registry.example.com/flywheel-dagster:0.1.0", dagster_home="/opt/dagster/dagster_home",
        image_pull_policy="IfNotPresent", image_pull_secrets=[], service_account_name=service_account,
        instance_config_map="dagster-instance", postgres_password_secret=postgres_secret,
        env_config_maps=["flywheel-env"], env_secrets=env_secrets, env_vars=[], volume_mounts=[], volumes=[],
        labels={}, resources={}, scheduler_name=None, security_context={},
    )  # fmt: skip
    job = construct_dagster_k8s_job(
        config,
        ["dagster", "api", "execute_run", "{}"],
        "dagster-run-0123456789",
        user_defined_k8s_config=UserDefinedDagsterK8sConfig.from_dict(run_k8s_config),
        component="run_worker",
    )
    return kubernetes.client.ApiClient().sanitize_for_serialization(job)


def production_run_job() -> dict:
    cfg = yaml.safe_load((DEPLOY / "dagster/dagster.yaml").read_text())["run_launcher"]["config"]
    return run_job(
        cfg["env_secrets"], cfg["postgres_password_secret"], cfg["run_k8s_config"], cfg["service_account_name"]
    )


def helm_run_job() -> dict:
    values = yaml.safe_load((DEPLOY / "helm/dagster-values.yaml").read_text())
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    run = launcher["runK8sConfig"]
    user_defined = {
        "container_config": run["containerConfig"],
        "pod_spec_config": run["podSpecConfig"],
        "pod_template_spec_metadata": run["podTemplateSpecMetadata"],
    }
    secrets = [s["name"] for s in launcher["envSecrets"]]
    return run_job(secrets, values["global"]["postgresqlSecretName"], user_defined, None)


RUN_JOBS = {"dagster.yaml": production_run_job, "helm values": helm_run_job}


@pytest.mark.parametrize("source", sorted(RUN_JOBS))
def test_run_jobs_meet_the_restricted_standard_and_the_schemas(source: str) -> None:
    job = RUN_JOBS[source]()
    kubernetes_validate.validate(job, "1.31.0", strict=True)
    assert restricted_violations(job["spec"]["template"]["spec"]) == []
    assert job["spec"]["template"]["spec"]["serviceAccountName"] == "flywheel-runner"
    assert job["spec"]["template"]["metadata"]["labels"]["flywheel.dev/code-client"] == "true"


# ---- the admission policy, evaluated ----------------------------------------------------------------------

_ENV = celpy.Environment()


def _eval(expression: str, activation: dict[str, Any]) -> Any:
    return _ENV.program(_ENV.compile(expression)).evaluate(activation)


def admitted(manifest: dict, username: str) -> bool | None:
    """The policy's verdict for `username` creating `manifest`: True/False, None when it does not apply."""
    activation: dict[str, Any] = {
        "object": celpy.json_to_cel(manifest),
        "request": celpy.json_to_cel({"userInfo": {"username": username}}),
    }
    if not all(_eval(c["expression"], activation) for c in POLICY["matchConditions"]):
        return None
    variables: dict[Any, Any] = {}
    for variable in POLICY["variables"]:  # in order: later ones use earlier ones
        activation["variables"] = celpy.celtypes.MapType(variables)
        variables[celpy.celtypes.StringType(variable["name"])] = _eval(variable["expression"], activation)
    activation["variables"] = celpy.celtypes.MapType(variables)
    return all(bool(_eval(v["expression"], activation)) for v in POLICY["validations"])


def training_manifests() -> list[dict]:
    with_claim = k8s.TrainingPodConfig(name="t", image="i", entry_args=[], gpus_per_node=0, checkpoint_claim="c")
    return [
        k8s.pod_manifest(k8s.example_config()),
        k8s.pod_manifest(with_claim),
        k8s.indexed_job_manifests(k8s.example_config(nodes=2))[1],
    ]


def pod_spec(manifest: dict) -> dict:
    return manifest["spec"] if manifest["kind"] == "Pod" else manifest["spec"]["template"]["spec"]


def with_extra_secret(manifest: dict, where: str, name: str = "flywheel-other") -> dict:
    out = copy.deepcopy(manifest)
    spec = pod_spec(out)
    container = spec["containers"][0]
    if where == "envFrom":
        container.setdefault("envFrom", []).append({"secretRef": {"name": name}})
    elif where == "env":
        ref = {"secretKeyRef": {"name": name, "key": "k"}}
        container.setdefault("env", []).append({"name": "X", "valueFrom": ref})
    elif where == "volume":
        spec.setdefault("volumes", []).append({"name": "s", "secret": {"secretName": name}})
    else:  # projected
        sources = [{"secret": {"name": name}}]
        spec.setdefault("volumes", []).append({"name": "p", "projected": {"sources": sources}})
    return out


def test_training_pods_and_run_jobs_are_admitted() -> None:
    for manifest in training_manifests():
        assert admitted(manifest, RUNNER) is True, manifest["kind"]
    assert admitted(production_run_job(), LAUNCHER) is True
    assert admitted(helm_run_job(), LAUNCHER) is True


@pytest.mark.parametrize("where", ["envFrom", "env", "volume", "projected"])
def test_another_secret_is_refused_wherever_it_is_named(where: str) -> None:
    for manifest in training_manifests():
        assert admitted(with_extra_secret(manifest, where), RUNNER) is False, (manifest["kind"], where)
    assert admitted(with_extra_secret(production_run_job(), where), LAUNCHER) is False


def test_each_account_gets_only_its_own_list() -> None:
    # the runner may not name what only run Jobs need (serving's token, the database password)
    for name in ("flywheel-serving", "flywheel-dagster-postgresql"):
        assert admitted(with_extra_secret(training_manifests()[0], "envFrom", name), RUNNER) is False
    assert admitted(production_run_job(), RUNNER) is False


def test_pods_created_by_anyone_else_are_not_the_policys_business() -> None:
    assert admitted(with_extra_secret(training_manifests()[0], "env"), "kubernetes-admin") is None
    assert admitted(production_run_job(), "system:serviceaccount:kube-system:job-controller") is None
