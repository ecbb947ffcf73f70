"""Kubernetes manifests for training (plain dicts, camelCase, no Dagster): the launchers and deploy/ use them.

Three shapes, all running the same torchrun entry point (multi-node jobs also get a NetworkPolicy,
rendezvous_network_policy(), so that only pods of the same job reach each other's rendezvous port):
  pod_spec()              one pod with N GPUs (PipesK8sClient builds the Pod around it)
  indexed_job_manifests() several nodes: a headless Service + an Indexed Job; pod i is node rank i and
                          pod 0 (hostname <job>-0.<service>) is the rendezvous master (static rendezvous,
                          so global rank 0, which reports to Dagster, always runs in pod 0)
  pytorch_job_manifest()  several nodes through the Kubeflow training operator (kubeflow.org/v1 PyTorchJob)

Every pod: non-root with a restricted security context (runAsNonRoot, no privilege escalation, all
capabilities dropped, seccomp RuntimeDefault, read-only root filesystem), the dedicated `flywheel-trainer`
service account with no API token, `nvidia.com/gpu` requests, node selectors and tolerations from config,
/dev/shm as a memory-backed emptyDir (NCCL and dataloaders need more than the 64 MiB default), and writable
emptyDirs for /tmp and the checkpoint directory (a PVC when `checkpoint_claim` is set, so checkpoints
survive a rescheduled pod). Jobs carry ttlSecondsAfterFinished, backoffLimit and activeDeadlineSeconds.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pipelines.errors import FlywheelError
from pipelines.redact import MASK, redact_url

CONTAINER = "trainer"
RENDEZVOUS_PORT = 29500
WORKSPACE = "/workspace"
STATE_DIR = f"{WORKSPACE}/state"  # FLYWHEEL_STATE_DIR: checkpoints land in <it>/checkpoints/<Dagster run id>
PART_OF = "flywheel"
RUN_ID_LABEL = "flywheel.dev/dagster-run-id"
JOB_LABEL = "flywheel.dev/training-job"
# Credentials reach pods only through Secrets (envFrom `secrets`: flywheel-lakefs, flywheel-mlflow), never
# as literal env in a pod spec, where anyone who may read pods or Jobs sees them.
SECRET_ENV = frozenset(
    {
        *("LAKEFS_ACCESS_KEY_ID", "LAKEFS_SECRET_ACCESS_KEY"),
        *("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN"),
        *("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"),
    }
)
_SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|CREDENTIAL|ACCESS_KEY", re.IGNORECASE)


@dataclass(frozen=True)
class TrainingPodConfig:
    name: str  # job name (DNS-1123 label); pods and the Service derive from it
    image: str
    entry_args: Sequence[str]  # arguments of pipelines.training.entry (--data lakefs://..., ...)
    namespace: str = "flywheel"
    nodes: int = 1
    gpus_per_node: int = 1  # 0 = CPU workers (nproc_per_node processes, gloo)
    nproc_per_node: int | None = None  # default: gpus_per_node, or 1 on CPU
    max_restarts: int = 1  # torchrun restarts of the worker group (resume from the last checkpoint)
    cpu: str = "4"
    memory: str = "16Gi"
    shm_size: str = "8Gi"
    node_selector: Mapping[str, str] = field(default_factory=dict)
    tolerations: Sequence[Mapping[str, Any]] = ()
    service_account: str = "flywheel-trainer"
    env: Mapping[str, str] = field(default_factory=dict)
    config_maps: Sequence[str] = ("flywheel-env",)  # envFrom
    secrets: Sequence[str] = ("flywheel-lakefs", "flywheel-mlflow")  # envFrom, optional (credentials)
    image_pull_policy: str = "IfNotPresent"
    image_pull_secrets: Sequence[str] = ()
    ttl_seconds_after_finished: int = 3600
    backoff_limit: int = 0  # torchrun already restarts workers; a new pod only helps with a checkpoint PVC
    active_deadline_seconds: int = 24 * 3600
    checkpoint_claim: str | None = None
    run_as_user: int = 10001  # the uid of the flywheel image
    labels: Mapping[str, str] = field(default_factory=dict)

    @property
    def procs(self) -> int:
        return self.nproc_per_node or max(self.gpus_per_node, 1)

    @property
    def service_name(self) -> str:
        return self.name  # headless Service: pod i resolves as <name>-i.<name>


def pod_env(env: Mapping[str, str]) -> tuple[dict[str, str], list[str]]:
    """(what may be written into a pod spec, names withheld): credential variables are dropped, and URLs
    lose their `user:password@` and secret query values (MLFLOW_TRACKING_URI's credentials reach the pod
    as MLFLOW_TRACKING_USERNAME/PASSWORD from the flywheel-mlflow Secret)."""
    kept: dict[str, str] = {}
    withheld: list[str] = []
    for name, value in env.items():
        if name in SECRET_ENV or _SECRET_NAME.search(name):
            withheld.append(name)
            continue
        kept[name] = redact_url(value)
        if kept[name] != value:
            withheld.append(name)
            if MASK in kept[name]:
                # A secret in a query string has no Secret to come back from: the pod would get *** and fail.
                raise FlywheelError(
                    f"{name} carries a secret in its query string, which must not be written into a pod spec: "
                    "put the credential in the flywheel-mlflow Secret (MLFLOW_TRACKING_TOKEN or USERNAME/PASSWORD) "
                    f"and drop it from {name}"
                )
    return kept, withheld


def dns_label(text: str, max_len: int = 52) -> str:
    """A DNS-1123 label (Jobs leave room for the pod suffix)."""
    label = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")[:max_len].strip("-")
    return label or "flywheel-train"


def label_value(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text)[:63].strip("-_.")


def torchrun_command(cfg: TrainingPodConfig, multinode: str = "none") -> list[str]:
    """multinode: none (--standalone), indexed (static rendezvous at pod 0), pytorchjob (operator's PET_* env)."""
    cmd = ["python", "-m", "torch.distributed.run", "--nproc-per-node", str(cfg.procs)]
    cmd += ["--max-restarts", str(cfg.max_restarts)]
    if multinode == "indexed":
        cmd += [
            "--nnodes", str(cfg.nodes),
            "--node-rank", "$(JOB_COMPLETION_INDEX)",
            "--master-addr", f"{cfg.name}-0.{cfg.service_name}",
            "--master-port", str(RENDEZVOUS_PORT),
        ]  # fmt: skip
    elif multinode == "none":
        cmd += ["--standalone"]
    device = ["--device", "cuda"] if cfg.gpus_per_node > 0 else ["--device", "cpu"]
    # No --checkpoint-dir: the entry point keys checkpoints by DAGSTER_RUN_ID under FLYWHEEL_STATE_DIR, so
    # a retry of the same run resumes (with a PVC) and a new run never picks up another run's checkpoints.
    return [*cmd, "-m", "pipelines.training.entry", *device, *cfg.entry_args]


def _labels(cfg: TrainingPodConfig) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "flywheel-trainer",
        "app.kubernetes.io/part-of": PART_OF,
        "app.kubernetes.io/component": "training",
        JOB_LABEL: cfg.name,
        **{k: label_value(v) for k, v in cfg.labels.items()},
    }


def container(cfg: TrainingPodConfig, command: list[str], extra_env: Sequence[Mapping[str, Any]] = ()) -> dict:
    resources: dict[str, dict[str, str]] = {
        "requests": {"cpu": cfg.cpu, "memory": cfg.memory},
        "limits": {"memory": cfg.memory},
    }
    if cfg.gpus_per_node > 0:
        resources["requests"]["nvidia.com/gpu"] = str(cfg.gpus_per_node)
        resources["limits"]["nvidia.com/gpu"] = str(cfg.gpus_per_node)
    env = [
        {"name": "HOME", "value": "/tmp"},
        {"name": "MPLCONFIGDIR", "value": "/tmp/matplotlib"},
        {"name": "FLYWHEEL_STATE_DIR", "value": STATE_DIR},
        {"name": "PYTHONUNBUFFERED", "value": "1"},
        *extra_env,
        *({"name": k, "value": v} for k, v in sorted(pod_env(cfg.env)[0].items())),
    ]
    env_from = [{"configMapRef": {"name": n, "optional": True}} for n in cfg.config_maps]
    env_from += [{"secretRef": {"name": n, "optional": True}} for n in cfg.secrets]
    return {
        "name": CONTAINER,
        "image": cfg.image,
        "imagePullPolicy": cfg.image_pull_policy,
        "command": command,
        "env": env,
        "envFrom": env_from,
        "resources": resources,
        "ports": [{"name": "rendezvous", "containerPort": RENDEZVOUS_PORT, "protocol": "TCP"}],
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": [
            {"name": "dshm", "mountPath": "/dev/shm"},
            {"name": "tmp", "mountPath": "/tmp"},
            {"name": "workspace", "mountPath": WORKSPACE},
        ],
        "terminationMessagePolicy": "FallbackToLogsOnError",  # the log tail becomes the termination message
    }


def pod_spec(cfg: TrainingPodConfig, command: list[str] | None = None, extra_env=()) -> dict:
    workspace = (
        {"persistentVolumeClaim": {"claimName": cfg.checkpoint_claim}} if cfg.checkpoint_claim else {"emptyDir": {}}
    )
    spec: dict[str, Any] = {
        "serviceAccountName": cfg.service_account,
        "automountServiceAccountToken": False,
        "restartPolicy": "Never",
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": cfg.run_as_user,
            "runAsGroup": cfg.run_as_user,
            "fsGroup": cfg.run_as_user,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container(cfg, command or torchrun_command(cfg), extra_env)],
        "volumes": [
            {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": cfg.shm_size}},
            {"name": "tmp", "emptyDir": {}},
            {"name": "workspace", **workspace},
        ],
        "terminationGracePeriodSeconds": 30,
    }
    if cfg.node_selector:
        spec["nodeSelector"] = dict(cfg.node_selector)
    if cfg.tolerations:
        spec["tolerations"] = [dict(t) for t in cfg.tolerations]
    if cfg.image_pull_secrets:
        spec["imagePullSecrets"] = [{"name": n} for n in cfg.image_pull_secrets]
    return spec


def single_pod_spec(cfg: TrainingPodConfig) -> dict:
    """pod_spec() for a bare Pod: the deadline sits on the Pod itself (Jobs carry their own)."""
    return {**pod_spec(cfg), "activeDeadlineSeconds": cfg.active_deadline_seconds}


def pod_manifest(cfg: TrainingPodConfig) -> dict:
    """A standalone single-node Pod (the launcher lets PipesK8sClient build it from single_pod_spec())."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": cfg.name, "namespace": cfg.namespace, "labels": _labels(cfg)},
        "spec": single_pod_spec(cfg),
    }


def indexed_job_manifests(cfg: TrainingPodConfig) -> list[dict]:
    """[headless Service, Indexed Job] for cfg.nodes nodes."""
    labels = _labels(cfg)
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": cfg.service_name, "namespace": cfg.namespace, "labels": labels},
        "spec": {
            "clusterIP": "None",
            "selector": {JOB_LABEL: cfg.name},
            "publishNotReadyAddresses": True,  # rendezvous needs DNS before pods are Ready
            "ports": [{"name": "rendezvous", "port": RENDEZVOUS_PORT, "targetPort": RENDEZVOUS_PORT}],
        },
    }
    index_env = [
        {
            "name": "JOB_COMPLETION_INDEX",
            "valueFrom": {
                "fieldRef": {"fieldPath": "metadata.annotations['batch.kubernetes.io/job-completion-index']"}
            },
        },
        {"name": "FLYWHEEL_NODES", "value": str(cfg.nodes)},
    ]
    spec = pod_spec(cfg, torchrun_command(cfg, "indexed"), index_env)
    spec["subdomain"] = cfg.service_name
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": cfg.name, "namespace": cfg.namespace, "labels": labels},
        "spec": {
            "completionMode": "Indexed",
            "completions": cfg.nodes,
            "parallelism": cfg.nodes,
            "backoffLimit": cfg.backoff_limit,
            "activeDeadlineSeconds": cfg.active_deadline_seconds,
            "ttlSecondsAfterFinished": cfg.ttl_seconds_after_finished,
            "template": {"metadata": {"labels": labels}, "spec": spec},
        },
    }
    return [service, job]


def rendezvous_network_policy(cfg: TrainingPodConfig) -> dict:
    """Ingress to a multi-node job's pods from pods of the same job only.

    deploy/k8s/base/networkpolicy.yaml denies all ingress to training pods; this per-job policy, created
    with the job and deleted with it, lets the job's own pods in: torchrun's rendezvous (RENDEZVOUS_PORT)
    and the collectives (NCCL/Gloo open further ports the job picks at run time, so no port list)."""
    same_job = {"matchLabels": {JOB_LABEL: cfg.name}}
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": cfg.name, "namespace": cfg.namespace, "labels": _labels(cfg)},
        "spec": {
            "podSelector": same_job,
            "policyTypes": ["Ingress"],
            "ingress": [{"from": [{"podSelector": same_job}]}],
        },
    }


def pytorch_job_manifest(cfg: TrainingPodConfig) -> dict:
    """A Kubeflow PyTorchJob: the operator sets PET_NNODES/PET_NODE_RANK/PET_MASTER_ADDR for torchrun."""
    labels = _labels(cfg)
    command = torchrun_command(cfg, "pytorchjob")
    base = replace(cfg)

    def replica(count: int) -> dict:
        spec = pod_spec(base, command, [{"name": "FLYWHEEL_NODES", "value": str(cfg.nodes)}])
        spec["containers"][0]["name"] = "pytorch"  # the operator looks for this container name
        spec["restartPolicy"] = "Never"
        return {"replicas": count, "restartPolicy": "Never", "template": {"metadata": {"labels": labels}, "spec": spec}}

    replicas = {"Master": replica(1)}
    if cfg.nodes > 1:
        replicas["Worker"] = replica(cfg.nodes - 1)
    return {
        "apiVersion": "kubeflow.org/v1",
        "kind": "PyTorchJob",
        "metadata": {"name": cfg.name, "namespace": cfg.namespace, "labels": labels},
        "spec": {
            "nprocPerNode": str(cfg.procs),
            "runPolicy": {
                "backoffLimit": cfg.backoff_limit,
                "activeDeadlineSeconds": cfg.active_deadline_seconds,
                "ttlSecondsAfterFinished": cfg.ttl_seconds_after_finished,
                "cleanPodPolicy": "None",
            },
            "pytorchReplicaSpecs": replicas,
        },
    }


def example_config(nodes: int = 1) -> TrainingPodConfig:
    return TrainingPodConfig(
        name="flywheel-train-example",
        image="registry.example.com/flywheel:latest",
        entry_args=["--data", "lakefs://flywheel/<commit id>/", "--spec", "transactions"],
        nodes=nodes,
        gpus_per_node=4 if nodes > 1 else 1,
        node_selector={"nvidia.com/gpu.present": "true"},
        tolerations=[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        env={"MLFLOW_EXPERIMENT_NAME": "flywheel"},
    )


# The checks of checkov (the deploy kit's IaC scan) that training pods do not meet, and why: written into the
# example manifests as checkov.io/skip annotations, so the scan of deploy/ states each exception where it applies.
CHECKOV_SKIPS = {
    "CKV_K8S_8": "a batch job: torchrun's exit is its health, and a liveness kill mid-collective would fail every rank",
    "CKV_K8S_9": "no traffic is routed to a training pod, so there is nothing for a readiness probe to gate",
    "CKV_K8S_11": "no CPU limit on purpose: CFS throttling stalls data loading and NCCL; CPU and memory are requested",
    "CKV_K8S_14": "example only: the launcher sets the image from FLYWHEEL_TRAINING_IMAGE (pin it by digest there)",
    "CKV_K8S_43": "example only: the launcher sets the image from FLYWHEEL_TRAINING_IMAGE (pin it by digest there)",
    "CKV_K8S_15": "IfNotPresent: the CUDA image is GBs and pinned by digest in production (a cached copy is exact)",
    "CKV_K8S_35": "the lakeFS and MLflow clients read credentials from environment variables (envFrom named Secrets)",
}


def with_checkov_skips(manifest: dict) -> dict:
    annotations = manifest["metadata"].setdefault("annotations", {})
    for i, (check, why) in enumerate(CHECKOV_SKIPS.items(), start=1):
        annotations[f"checkov.io/skip{i}"] = f"{check}={why}"
    return manifest


def write_examples(out_dir: Path) -> list[Path]:
    """deploy/k8s/training/*.yaml, regenerated by `python -m pipelines.training.k8s deploy/k8s/training`."""
    import yaml

    out_dir.mkdir(parents=True, exist_ok=True)
    header = "# Generated by `python -m pipelines.training.k8s deploy/k8s/training`; do not edit by hand.\n"
    network_policy, service, job = (
        rendezvous_network_policy(example_config(nodes=2)),
        *indexed_job_manifests(example_config(nodes=2)),
    )
    docs = {
        "pod.yaml": [with_checkov_skips(pod_manifest(example_config()))],
        "indexed-job.yaml": [network_policy, service, with_checkov_skips(job)],
        # .yml: a CRD (kubeflow.org/v1) that the strict Kubernetes-schema check of deploy/k8s/**/*.yaml cannot know
        "pytorchjob.kubeflow.yml": [
            rendezvous_network_policy(example_config(nodes=2)),
            pytorch_job_manifest(example_config(nodes=2)),
        ],
    }
    paths = []
    for name, manifests in docs.items():
        path = out_dir / name
        path.write_text(header + yaml.safe_dump_all(manifests, sort_keys=False, width=120))
        paths.append(path)
    return paths


if __name__ == "__main__":
    for p in write_examples(Path(sys.argv[1] if len(sys.argv) > 1 else "deploy/k8s/training")):
        print(p)
