"""No credential in a Kubernetes pod spec: the env the training asset hands the launcher (MLflow URI with
user:token@, lakeFS keys) is rendered into pod, Indexed Job and PyTorchJob manifests, and neither the
password, the token nor the user appears anywhere in them; pods get credentials from Secrets."""

from __future__ import annotations

import json

import pytest

from pipelines.training import k8s
from resources.mlflow import MLflowResource
from resources.training import K8sTrainingLauncher

CREDENTIALED = "https://alice:s3cr3t-token@mlflow.example.com/"
SECRETS = ("s3cr3t-token", "alice", "lakefs-secret-key", "AKIALAKEFSKEY")


def trainer_env() -> dict[str, str]:
    return {
        **MLflowResource(tracking_uri=CREDENTIALED).env(),
        "LAKEFS_ENDPOINT": "http://lakefs.lakefs.svc:8000",
        "LAKEFS_ACCESS_KEY_ID": "AKIALAKEFSKEY",
        "LAKEFS_SECRET_ACCESS_KEY": "lakefs-secret-key",
        "DAGSTER_RUN_ID": "run-1",
    }


@pytest.mark.parametrize("shape", ["pod", "indexed_job", "pytorchjob"])
def test_rendered_pod_specs_hold_no_credential(shape: str) -> None:
    launcher = K8sTrainingLauncher(image="registry.example.com/flywheel:1", namespace="flywheel", nodes=2)
    cfg = launcher.pod_config("flywheel-train-x", ["--data", "lakefs://flywheel/c/"], trainer_env(), "run-1")
    docs = {
        "pod": lambda: [k8s.pod_manifest(cfg)],
        "indexed_job": lambda: k8s.indexed_job_manifests(cfg),
        "pytorchjob": lambda: [k8s.pytorch_job_manifest(cfg)],
    }[shape]()
    rendered = json.dumps(docs)
    for secret in SECRETS:
        assert secret not in rendered, f"{secret!r} is in the {shape} manifest"
    containers = [c for d in docs for c in _containers(d)]
    assert containers
    for container in containers:
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["MLFLOW_TRACKING_URI"] == "https://mlflow.example.com/"  # the server, without the credentials
        assert env["LAKEFS_ENDPOINT"] == "http://lakefs.lakefs.svc:8000"
        secret_refs = {s["secretRef"]["name"] for s in container["envFrom"] if "secretRef" in s}
        assert {"flywheel-lakefs", "flywheel-mlflow"} <= secret_refs  # where pods get them instead


def test_manifests_filter_credentials_even_when_handed_them_directly() -> None:
    cfg = k8s.TrainingPodConfig(
        name="x", image="img", entry_args=[], env={"MLFLOW_TRACKING_URI": CREDENTIALED, "DB_PASSWORD": "hunter2"}
    )
    rendered = json.dumps(k8s.pod_manifest(cfg))
    assert "s3cr3t-token" not in rendered and "hunter2" not in rendered and "DB_PASSWORD" not in rendered


def test_pod_env_names_what_it_withheld() -> None:
    kept, withheld = k8s.pod_env(trainer_env())
    assert set(withheld) == {
        "MLFLOW_TRACKING_USERNAME",
        "MLFLOW_TRACKING_PASSWORD",
        "LAKEFS_ACCESS_KEY_ID",
        "LAKEFS_SECRET_ACCESS_KEY",
    }
    assert kept["DAGSTER_RUN_ID"] == "run-1" and "LAKEFS_SECRET_ACCESS_KEY" not in kept


def test_mlflow_resource_shows_no_credentials_but_hands_them_to_mlflow() -> None:
    mlflow = MLflowResource(tracking_uri=CREDENTIALED)
    assert mlflow.display_uri() == "https://mlflow.example.com/"
    env = mlflow.env()
    assert env["MLFLOW_TRACKING_URI"] == "https://mlflow.example.com/"
    assert (env["MLFLOW_TRACKING_USERNAME"], env["MLFLOW_TRACKING_PASSWORD"]) == ("alice", "s3cr3t-token")
    plain = MLflowResource(tracking_uri="http://mlflow:5000").env()
    assert plain["MLFLOW_TRACKING_URI"] == "http://mlflow:5000" and "MLFLOW_TRACKING_PASSWORD" not in plain


def _containers(doc: dict) -> list[dict]:
    if doc["kind"] == "Pod":
        return doc["spec"]["containers"]
    if doc["kind"] == "Job":
        return doc["spec"]["template"]["spec"]["containers"]
    if doc["kind"] == "PyTorchJob":
        return [c for r in doc["spec"]["pytorchReplicaSpecs"].values() for c in r["template"]["spec"]["containers"]]
    return []


def test_a_secret_in_a_query_string_is_refused_not_masked() -> None:
    """A masked query value would reach the pod as *** and fail there; no Secret can give it back."""
    from pipelines.errors import FlywheelError

    env = {**trainer_env(), "MLFLOW_TRACKING_URI": "https://mlflow.example.com/?token=presigned-sig"}
    with pytest.raises(FlywheelError, match="MLFLOW_TRACKING_URI carries a secret in its query string"):
        k8s.pod_env(env)
