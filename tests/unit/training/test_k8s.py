"""Generated Kubernetes manifests validate against the Kubernetes schemas and carry the policies."""

from __future__ import annotations

from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from pipelines.training import k8s

K8S_VERSION = "1.31.0"
DEPLOY = Path(__file__).resolve().parents[3] / "deploy" / "k8s" / "training"


def config(**overrides) -> k8s.TrainingPodConfig:
    return k8s.TrainingPodConfig(
        **{
            "name": "flywheel-train-abc",
            "image": "registry.example.com/flywheel:1",
            "entry_args": ["--data", "lakefs://flywheel/" + "a" * 64 + "/"],
            "gpus_per_node": 4,
            "node_selector": {"nvidia.com/gpu.present": "true"},
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
            "env": {"DAGSTER_RUN_ID": "r-1"},
            **overrides,
        }
    )


@pytest.mark.parametrize(
    "manifests",
    [
        pytest.param(lambda: [k8s.pod_manifest(config())], id="gpu-pod"),
        pytest.param(lambda: k8s.indexed_job_manifests(config(nodes=3)), id="indexed-job"),
        pytest.param(lambda: [k8s.pod_manifest(config(gpus_per_node=0, checkpoint_claim="ckpt"))], id="cpu-pod-pvc"),
    ],
)
def test_manifests_validate_strictly(manifests) -> None:
    for doc in manifests():
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_pod_is_restricted_and_requests_gpus_and_shm() -> None:
    spec = k8s.single_pod_spec(config(active_deadline_seconds=7200))
    assert spec["activeDeadlineSeconds"] == 7200
    container = spec["containers"][0]
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert spec["serviceAccountName"] == "flywheel-trainer" and spec["automountServiceAccountToken"] is False
    sc = container["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"] == {"drop": ["ALL"]}
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "4"
    assert spec["nodeSelector"] and spec["tolerations"]
    dshm = next(v for v in spec["volumes"] if v["name"] == "dshm")
    assert dshm["emptyDir"]["medium"] == "Memory"
    assert {"mountPath": "/dev/shm", "name": "dshm"} in container["volumeMounts"]
    cmd = container["command"]
    assert cmd[:3] == ["python", "-m", "torch.distributed.run"] and "--standalone" in cmd
    assert cmd[cmd.index("--nproc-per-node") + 1] == "4"
    assert "pipelines.training.entry" in cmd and "--device" in cmd


def test_indexed_job_has_headless_service_rank_wiring_and_lifetimes() -> None:
    service, job = k8s.indexed_job_manifests(config(nodes=3, ttl_seconds_after_finished=600))
    assert service["spec"]["clusterIP"] == "None" and service["spec"]["publishNotReadyAddresses"] is True
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed" and spec["completions"] == spec["parallelism"] == 3
    assert spec["ttlSecondsAfterFinished"] == 600 and spec["backoffLimit"] == 0 and spec["activeDeadlineSeconds"] > 0
    pod = spec["template"]["spec"]
    assert pod["subdomain"] == service["metadata"]["name"]
    cmd = pod["containers"][0]["command"]
    assert cmd[cmd.index("--node-rank") + 1] == "$(JOB_COMPLETION_INDEX)"
    assert cmd[cmd.index("--master-addr") + 1] == "flywheel-train-abc-0.flywheel-train-abc"
    assert service["spec"]["selector"] == {k8s.JOB_LABEL: "flywheel-train-abc"}
    assert job["spec"]["template"]["metadata"]["labels"][k8s.JOB_LABEL] == "flywheel-train-abc"


def test_pytorchjob_shape() -> None:
    job = k8s.pytorch_job_manifest(config(nodes=2))
    assert job["apiVersion"] == "kubeflow.org/v1" and job["kind"] == "PyTorchJob"
    replicas = job["spec"]["pytorchReplicaSpecs"]
    assert replicas["Master"]["replicas"] == 1 and replicas["Worker"]["replicas"] == 1
    assert replicas["Master"]["template"]["spec"]["containers"][0]["name"] == "pytorch"
    assert job["spec"]["runPolicy"]["ttlSecondsAfterFinished"] == 3600
    # the pod template inside is an ordinary, valid Pod
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}, **replicas["Worker"]["template"]}
    kubernetes_validate.validate(pod, K8S_VERSION, strict=True)


def test_committed_examples_are_up_to_date(tmp_path: Path) -> None:
    for fresh in k8s.write_examples(tmp_path):
        committed = DEPLOY / fresh.name
        assert committed.read_text() == fresh.read_text(), f"regenerate: python -m pipelines.training.k8s {DEPLOY}"
        assert list(yaml.safe_load_all(committed.read_text()))


def test_names_are_dns_labels() -> None:
    assert k8s.dns_label("Flywheel_Train/RUN 42!") == "flywheel-train-run-42"
    assert len(k8s.dns_label("x" * 200)) <= 52
