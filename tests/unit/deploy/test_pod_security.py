"""Every pod template in deploy/ meets the restricted Pod Security Standard (the NetworkPolicies are checked in
test_network_policies.py). Kubernetes schemas accept all of the mistakes checked here, so these rules are
checked directly, on:
  - every pod spec found anywhere in deploy/k8s/ (Pods, Jobs, Deployments, PyTorchJob replicas...),
  - the pods the Dagster Helm chart makes from deploy/helm/dagster-values.yaml (webserver, instance
    migration Job, daemon, code server, K8sRunLauncher run pods),
  - the manifests pipelines/training/k8s.py generates (pod, Indexed Job, PyTorchJob).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipelines.training import k8s

DEPLOY = Path(__file__).resolve().parents[3] / "deploy"
# Volume types the restricted profile allows (no hostPath, nfs, iscsi...).
RESTRICTED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected"}
RESTRICTED_VOLUMES |= {"secret"}


def restricted_violations(spec: dict[str, Any]) -> list[str]:
    """What in a pod spec breaks the restricted Pod Security Standard (empty: nothing)."""
    found: list[str] = []
    pod_sc = spec.get("securityContext") or {}
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(key):
            found.append(f"{key} is true")
    for volume in spec.get("volumes") or []:
        kinds = set(volume) - {"name"}
        if not kinds <= RESTRICTED_VOLUMES:
            found.append(f"volume {volume.get('name')} is {sorted(kinds - RESTRICTED_VOLUMES)}")
    containers = [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]
    containers += spec.get("ephemeralContainers") or []
    if not containers:
        found.append("no containers")
    for c in containers:
        name, sc = c.get("name", "?"), c.get("securityContext") or {}
        if sc.get("privileged"):
            found.append(f"{name}: privileged")
        if sc.get("allowPrivilegeEscalation") is not False:
            found.append(f"{name}: allowPrivilegeEscalation is not false")
        caps = sc.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            found.append(f"{name}: capabilities do not drop ALL")
        if set(caps.get("add") or []) - {"NET_BIND_SERVICE"}:
            found.append(f"{name}: adds capabilities {caps['add']}")
        if sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is not True:
            found.append(f"{name}: runAsNonRoot is not true (pod or container)")
        if sc.get("runAsUser", pod_sc.get("runAsUser")) == 0:
            found.append(f"{name}: runs as uid 0")
        seccomp = (sc.get("seccompProfile") or pod_sc.get("seccompProfile") or {}).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            found.append(f"{name}: seccompProfile is {seccomp!r}, not RuntimeDefault (pod or container)")
        if any(p.get("hostPort") for p in c.get("ports") or []):
            found.append(f"{name}: hostPort")
        if sc.get("procMount", "Default") != "Default":
            found.append(f"{name}: procMount {sc['procMount']}")
    return found


def pod_specs(node: Any, where: str) -> Iterator[tuple[str, dict]]:
    """Every pod spec (a mapping with a `containers` list) inside a manifest, whatever wraps it."""
    if isinstance(node, dict):
        if isinstance(node.get("containers"), list):
            yield where, node
            return
        for key, value in node.items():
            yield from pod_specs(value, f"{where}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from pod_specs(value, f"{where}[{i}]")


def manifest_pods() -> list[tuple[str, dict]]:
    found = []
    for path in sorted([*(DEPLOY / "k8s").rglob("*.yaml"), *(DEPLOY / "k8s").rglob("*.yml")]):
        for i, doc in enumerate(d for d in yaml.safe_load_all(path.read_text()) if d):
            found += pod_specs(doc, f"{path.relative_to(DEPLOY)}#{i} {doc.get('kind')}")
    return found


def helm_values() -> dict:
    return yaml.safe_load((DEPLOY / "helm/dagster-values.yaml").read_text())


def helm_pods(values: dict) -> dict[str, dict]:
    """The pod specs the Dagster chart renders from the values, as far as security goes: each component's
    podSecurityContext and its securityContext on every container (init containers included)."""

    def pod(component: dict, init: bool) -> dict:
        container = {"name": "main", "securityContext": component.get("securityContext")}
        spec = {"securityContext": component.get("podSecurityContext"), "containers": [container]}
        spec["volumes"] = component.get("volumes") or []
        if init:  # check-db-ready and init-user-deployment-* take the component's securityContext
            spec["initContainers"] = [{**container, "name": "init"}]
        return spec

    web, daemon = values.get("dagsterWebserver", {}), values.get("dagsterDaemon", {})
    pods = {
        "webserver": pod(web, init=True),
        "instance-migrate Job (webserver settings)": pod(web, init=False),
        "daemon": pod(daemon, init=True),
    }
    for d in values["dagster-user-deployments"]["deployments"]:
        pods[f"code server {d['name']}"] = pod(d, init=False)
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    run = launcher.get("runK8sConfig") or {}
    container = dict(run.get("containerConfig") or {})
    container.setdefault("securityContext", launcher.get("securityContext"))
    pods["K8sRunLauncher run pod"] = {
        **(run.get("podSpecConfig") or {}),
        "containers": [{"name": "dagster", **container}],
        "volumes": launcher.get("volumes") or [],
    }
    return pods


def generated_pods() -> list[tuple[str, dict]]:
    found = []
    for label, cfg in {
        "gpu": k8s.example_config(),
        "cpu+pvc": k8s.TrainingPodConfig(name="t", image="i", entry_args=[], gpus_per_node=0, checkpoint_claim="c"),
        "multi-node": k8s.example_config(nodes=3),
    }.items():
        docs = [k8s.pod_manifest(cfg), *k8s.indexed_job_manifests(cfg), k8s.pytorch_job_manifest(cfg)]
        for doc in docs:
            found += pod_specs(doc, f"pipelines.training.k8s {label} {doc['kind']}:")
    return found


ALL_PODS = [*manifest_pods(), *helm_pods(helm_values()).items(), *generated_pods()]


@pytest.mark.parametrize(("where", "spec"), ALL_PODS, ids=[w for w, _ in ALL_PODS])
def test_pod_meets_the_restricted_standard(where: str, spec: dict) -> None:
    assert restricted_violations(spec) == [], where


def test_every_source_of_pods_is_walked() -> None:
    sources = {w.split(" ")[0].split("#")[0] for w, _ in manifest_pods()}
    assert {"k8s/training/pod.yaml", "k8s/training/indexed-job.yaml", "k8s/training/pytorchjob.kubeflow.yml"} <= sources
    assert {"k8s/serving/serving.yaml", "k8s/features/updater.yaml", "k8s/observability/exporter.yaml"} <= sources
    assert set(helm_pods(helm_values())) >= {"webserver", "daemon", "code server flywheel", "K8sRunLauncher run pod"}
    kinds = {w.split(":")[0].rsplit(" ", 1)[-1] for w, _ in generated_pods()}
    assert kinds == {"Pod", "Job", "PyTorchJob"}
    multi_node = [w for w, _ in generated_pods() if w.startswith("pipelines.training.k8s multi-node PyTorchJob")]
    assert len(multi_node) == 2  # the Master and the Worker replica templates


@pytest.mark.parametrize(
    ("breakage", "reason"),
    [
        ({"hostNetwork": True}, "hostNetwork"),
        ({"volumes": [{"name": "h", "hostPath": {"path": "/"}}]}, "hostPath"),
        ({"containers": [{"name": "c", "securityContext": {"runAsNonRoot": False}}]}, "runAsNonRoot"),
        ({"containers": [{"name": "c", "securityContext": {"runAsUser": 0}}]}, "uid 0"),
        ({"containers": [{"name": "c", "securityContext": {"privileged": True}}]}, "privileged"),
        ({"containers": [{"name": "c", "securityContext": {"allowPrivilegeEscalation": True}}]}, "Escalation"),
        ({"containers": [{"name": "c", "securityContext": {"capabilities": {"drop": ["NET_RAW"]}}}]}, "drop ALL"),
        ({"containers": [{"name": "c", "securityContext": {"seccompProfile": {"type": "Unconfined"}}}]}, "seccomp"),
    ],
)
def test_the_check_catches_each_broken_rule(breakage: dict, reason: str) -> None:
    good = helm_pods(helm_values())["code server flywheel"]
    assert restricted_violations(good) == []
    container = {**good["containers"][0]}
    if "containers" in breakage:  # the broken field on top of an otherwise restricted container
        sc = {**container["securityContext"], **breakage["containers"][0]["securityContext"]}
        breakage = {"containers": [{**container, "securityContext": sc}]}
    assert any(reason in v for v in restricted_violations({**good, **breakage}))


def test_the_namespace_enforces_audits_and_warns_restricted() -> None:
    namespace = yaml.safe_load((DEPLOY / "k8s/base/namespace.yaml").read_text())
    labels = namespace["metadata"]["labels"]
    for mode in ("enforce", "audit", "warn"):
        assert labels[f"pod-security.kubernetes.io/{mode}"] == "restricted", mode
