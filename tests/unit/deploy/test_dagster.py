"""Dagster on Kubernetes: the production instance (deploy/dagster/dagster.yaml), the compose instance and the Helm
values are checked with Dagster's own config schemas and the Kubernetes models dagster-k8s builds pods from, and
the run queue limits exactly the tag the training jobs carry, to one run, so two trainings never share the GPUs.

The Helm values' keys are checked against the keys of the official chart's values schema
(helm/dagster/schema/schema/charts in dagster-io/dagster, the 1.13 line: Webserver, Daemon, UserDeployment,
K8sRunLauncherConfig, QueuedRunCoordinatorConfig, Global), copied below as lists of names: no chart is rendered
here (no helm binary), so a key the chart does not know would otherwise be ignored by Helm without a word.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import yaml
from dagster._config import process_config
from dagster._core.instance.config import dagster_instance_config
from dagster._core.run_coordinator import QueuedRunCoordinator
from dagster_k8s import K8sRunLauncher
from dagster_k8s.models import k8s_model_from_dict, k8s_snake_case_dict

from jobs import JOBS, TRAINING_RUN_TAG

DEPLOY = Path(__file__).resolve().parents[3] / "deploy"
VALUES = yaml.safe_load((DEPLOY / "helm/dagster-values.yaml").read_text())
PG_ENV = {"DAGSTER_PG_HOST": "db", "DAGSTER_PG_USER": "dagster", "DAGSTER_PG_PASSWORD": "x", "DAGSTER_PG_DB": "d"}


def load_instance(name: str, tmp: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    for key, value in PG_ENV.items():
        monkeypatch.setenv(key, value)
    shutil.copy(DEPLOY / "dagster" / name, tmp / "dagster.yaml")
    config, _ = dagster_instance_config(str(tmp))  # raises DagsterInvalidConfigError on a schema error
    return dict(config)


def check_run_k8s_config(run: dict[str, Any]) -> None:
    """Build the Kubernetes models dagster-k8s builds from run_k8s_config (camelCase or snake_case): unknown keys
    or wrong types raise."""
    pod = k8s_snake_case_dict(kubernetes.client.V1PodSpec, {**run["pod_spec_config"], "containers": []})
    k8s_model_from_dict(kubernetes.client.V1PodSpec, pod)
    container = k8s_snake_case_dict(kubernetes.client.V1Container, {**run["container_config"], "name": "dagster"})
    k8s_model_from_dict(kubernetes.client.V1Container, container)
    meta = k8s_snake_case_dict(kubernetes.client.V1ObjectMeta, run["pod_template_spec_metadata"])
    k8s_model_from_dict(kubernetes.client.V1ObjectMeta, meta)


def training_limits(limits: list[dict[str, Any]]) -> list[int]:
    ((key, value),) = TRAINING_RUN_TAG.items()
    return [lim["limit"] for lim in limits if lim["key"] == key and lim.get("value") == value]


def test_training_jobs_carry_the_tag_the_queue_limits() -> None:
    tagged = {job.name for job in JOBS if TRAINING_RUN_TAG.items() <= (job.tags or {}).items()}
    assert {"retrain_job", "pipeline_job"} <= tagged
    assert "ingest_job" not in tagged  # ingestion never waits behind a training run


def test_production_instance_validates_against_dagsters_schemas(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = load_instance("dagster.yaml", tmp_path, monkeypatch)
    assert set(config["storage"]) == {"postgres"}  # runs, event logs and schedules in PostgreSQL
    launcher = config["run_launcher"]
    assert (launcher["module"], launcher["class"]) == ("dagster_k8s", "K8sRunLauncher")
    result = process_config(K8sRunLauncher.config_type(), launcher["config"])
    assert result.success, result.errors
    check_run_k8s_config(launcher["config"]["run_k8s_config"])
    assert launcher["config"]["service_account_name"] == "flywheel-runner"
    coordinator = config["run_coordinator"]
    assert coordinator["class"] == "QueuedRunCoordinator"
    result = process_config(QueuedRunCoordinator.config_type(), coordinator["config"])
    assert result.success, result.errors
    assert training_limits(coordinator["config"]["tag_concurrency_limits"]) == [1]


def test_compose_instance_validates_and_limits_training(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = load_instance("dagster.compose.yaml", tmp_path, monkeypatch)
    assert set(config["storage"]) == {"postgres"}
    assert process_config(QueuedRunCoordinator.config_type(), config["run_coordinator"]["config"]).success
    assert training_limits(config["run_coordinator"]["config"]["tag_concurrency_limits"]) == [1]


def test_the_schemas_catch_a_typo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = load_instance("dagster.yaml", tmp_path, monkeypatch)
    bad = {**config["run_launcher"]["config"], "job_namespce": "flywheel"}
    assert not process_config(K8sRunLauncher.config_type(), bad).success
    run = config["run_launcher"]["config"]["run_k8s_config"]
    with pytest.raises(Exception, match="Unexpected keys"):
        check_run_k8s_config({**run, "container_config": {"security_context": {"run_as_nonroot": True}}})


def test_helm_values_limit_training_and_build_valid_run_pods() -> None:
    queued = VALUES["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]
    assert training_limits(queued["tagConcurrencyLimits"]) == [1]
    run = VALUES["runLauncher"]["config"]["k8sRunLauncher"]["runK8sConfig"]
    check_run_k8s_config(
        {
            "pod_spec_config": run["podSpecConfig"],
            "container_config": run["containerConfig"],
            "pod_template_spec_metadata": run["podTemplateSpecMetadata"],
        }
    )


# ---- the chart's keys -------------------------------------------------------------------------------------

PROBE = {"httpGet", "exec", "tcpSocket", "grpc", "initialDelaySeconds", "periodSeconds", "timeoutSeconds",
         "successThreshold", "failureThreshold", "terminationGracePeriodSeconds"}  # fmt: skip
COMMON = {"image", "env", "envConfigMaps", "envSecrets", "deploymentLabels", "labels", "nodeSelector", "affinity",
          "tolerations", "podSecurityContext", "securityContext", "checkDbReadyInitContainer", "resources",
          "readinessProbe", "livenessProbe", "startupProbe", "annotations", "schedulerName", "logFormat",
          "volumeMounts", "volumes", "initContainerResources", "extraContainers",
          "extraPrependedInitContainers"}  # fmt: skip
CHART_KEYS: dict[str, set[str] | None] = {  # None: a free-form mapping (Kubernetes objects, labels)
    "": {"global", "generatePostgresqlPasswordSecret", "generateCeleryConfigSecret", "postgresql", "dagsterWebserver",
         "dagsterDaemon", "dagster-user-deployments", "runLauncher", "telemetry", "pythonLogs", "computeLogManager",
         "scheduler", "imagePullSecrets", "serviceAccount", "rbacEnabled", "busybox", "migrate", "ingress",
         "retention", "additionalInstanceConfig", "flower", "rabbitmq", "redis"},
    "global": {"postgresqlSecretName", "dagsterHome", "serviceAccountName", "celeryConfigSecretName"},
    "postgresql": {"enabled", "image", "postgresqlHost", "postgresqlUsername", "postgresqlPassword",
                   "postgresqlDatabase", "postgresqlParams", "postgresqlScheme", "service"},
    "postgresql.service": {"port"},
    "dagsterWebserver": COMMON | {"replicaCount", "nameOverride", "pathPrefix", "service", "workspace",
                                  "enableReadOnly", "dbStatementTimeout", "dbPoolRecycle", "dbPoolMaxOverflow",
                                  "logLevel"},
    "dagsterWebserver.service": {"type", "port", "annotations"},
    "dagsterWebserver.image": {"repository", "tag", "pullPolicy"},
    "dagsterWebserver.readinessProbe": PROBE,
    "dagsterWebserver.livenessProbe": PROBE,
    "dagsterWebserver.startupProbe": PROBE | {"enabled"},
    "dagsterDaemon": COMMON | {"enabled", "runCoordinator", "heartbeatTolerance", "runMonitoring", "runRetries",
                               "sensors", "schedules", "backfills"},
    "dagsterDaemon.image": {"repository", "tag", "pullPolicy"},
    "dagsterDaemon.runCoordinator": {"enabled", "type", "config"},
    "dagsterDaemon.runCoordinator.config": {"queuedRunCoordinator", "customRunCoordinator"},
    "dagsterDaemon.runCoordinator.config.queuedRunCoordinator": {
        "maxConcurrentRuns", "tagConcurrencyLimits", "dequeueIntervalSeconds", "dequeueNumWorkers",
        "dequeueUseThreads", "blockOpConcurrencyLimitedRuns"},
    "dagster-user-deployments": {"enabled", "enableSubchart", "deployments"},
    "dagster-user-deployments.deployments[]": {
        "name", "image", "dagsterApiGrpcArgs", "codeServerArgs", "includeConfigInLaunchedRuns", "deploymentNamespace",
        "port", "replicaCount", "env", "envConfigMaps", "envSecrets", "annotations", "nodeSelector", "affinity",
        "tolerations", "podSecurityContext", "securityContext", "resources", "livenessProbe", "readinessProbe",
        "startupProbe", "labels", "volumeMounts", "volumes", "schedulerName", "initContainers", "sidecarContainers",
        "deploymentStrategy"},
    "dagster-user-deployments.deployments[].image": {"repository", "tag", "pullPolicy"},
    "runLauncher": {"type", "config"},
    "runLauncher.config": {"k8sRunLauncher", "celeryK8sRunLauncher", "customRunLauncher"},
    "runLauncher.config.k8sRunLauncher": {
        "image", "imagePullPolicy", "jobNamespace", "loadInclusterConfig", "kubeconfigFile", "envConfigMaps",
        "envSecrets", "envVars", "volumeMounts", "volumes", "labels", "failPodOnRunFailure", "resources",
        "schedulerName", "securityContext", "runK8sConfig"},
    "runLauncher.config.k8sRunLauncher.runK8sConfig": {
        "containerConfig", "podSpecConfig", "podTemplateSpecMetadata", "jobSpecConfig", "jobMetadata"},
    "telemetry": {"enabled"},
    "pythonLogs": {"pythonLogLevel", "managedPythonLoggers", "dagsterHandlerConfig"},
}  # fmt: skip


def unknown_keys(node: Any, path: str = "") -> list[str]:
    found = []
    if isinstance(node, dict) and path in CHART_KEYS:
        allowed = CHART_KEYS[path]
        for key, value in node.items():
            if allowed is not None and key not in allowed:
                found.append(f"{path or '<top>'}: {key}")
            found += unknown_keys(value, f"{path}.{key}" if path else key)
    elif isinstance(node, list):
        for item in node:
            found += unknown_keys(item, f"{path}[]")
    return found


def test_helm_values_use_only_keys_the_chart_knows() -> None:
    assert unknown_keys(VALUES) == []
    assert unknown_keys({"dagsterWebserver": {"podSecurityContex": {}}}) == ["dagsterWebserver: podSecurityContex"]


def test_no_chart_pod_listens_on_a_privileged_port() -> None:
    # All capabilities are dropped: a non-root process cannot bind below 1024.
    web = VALUES["dagsterWebserver"]
    assert web["service"]["port"] >= 1024
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert web[probe]["httpGet"]["port"] == web["service"]["port"], probe
    assert all(d["port"] >= 1024 for d in VALUES["dagster-user-deployments"]["deployments"])
