"""The NetworkPolicies let only the intended peers in: every pod of the namespace denies by default, and each
allow rule names its peers (pods of the namespace by label, other namespaces by name) and its port. Evaluated
here with the NetworkPolicy semantics for ingress (a pod selected by no policy is open; selected pods accept the
union of their policies' rules), against the labels the manifests and Helm values really put on the pods."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from pipelines.training import k8s

DEPLOY = Path(__file__).resolve().parents[3] / "deploy"
NAMESPACE = "flywheel"
INGRESS_NS, MONITORING_NS = "ingress-nginx", "monitoring"


def _matches(selector: dict | None, labels: dict) -> bool:
    return all(labels.get(k) == v for k, v in ((selector or {}).get("matchLabels") or {}).items())


def _peer_admits(peer: dict, source: dict, source_ns: str) -> bool:
    ns_labels = {"kubernetes.io/metadata.name": source_ns}
    if "namespaceSelector" in peer:  # pods (matching podSelector, default all) of the selected namespaces
        return _matches(peer["namespaceSelector"], ns_labels) and _matches(peer.get("podSelector"), source)
    if "podSelector" in peer:  # pods of the policy's own namespace
        return source_ns == NAMESPACE and _matches(peer["podSelector"], source)
    return False  # ipBlock: not used by the kit


def ingress_allowed(policies: list[dict], source: dict, target: dict, port: int, source_ns: str = NAMESPACE) -> bool:
    """Whether a pod labelled `source` in `source_ns` may connect to `port` of a flywheel pod labelled `target`."""
    selecting = [p for p in policies if _matches(p["spec"]["podSelector"], target)]
    selecting = [p for p in selecting if "Ingress" in p["spec"].get("policyTypes", ["Ingress"])]
    if not selecting:
        return True  # no policy isolates the target
    for policy in selecting:
        for rule in policy["spec"].get("ingress") or []:
            peers, ports = rule.get("from"), rule.get("ports")
            peer_ok = peers is None or any(_peer_admits(peer, source, source_ns) for peer in peers)
            port_ok = ports is None or any(p.get("port") == port for p in ports)
            if peer_ok and port_ok:
                return True
    return False


def documents(relative: str) -> list[dict]:
    return [d for d in yaml.safe_load_all((DEPLOY / relative).read_text()) if d]


def base_policies() -> list[dict]:
    return [d for d in documents("k8s/base/networkpolicy.yaml") if d["kind"] == "NetworkPolicy"]


def pod_labels(relative: str, name: str) -> dict[str, Any]:
    doc = next(d for d in documents(relative) if d["kind"] == "Deployment" and d["metadata"]["name"] == name)
    return doc["spec"]["template"]["metadata"]["labels"]


def helm() -> dict:
    return yaml.safe_load((DEPLOY / "helm/dagster-values.yaml").read_text())


def job_config(job: str) -> k8s.TrainingPodConfig:
    return replace(k8s.example_config(nodes=2), name=job)


def trainer_labels(job: str) -> dict:
    return k8s.indexed_job_manifests(job_config(job))[1]["spec"]["template"]["metadata"]["labels"]


SERVING = pod_labels("k8s/serving/serving.yaml", "flywheel-serving")
EXPORTER = pod_labels("k8s/observability/exporter.yaml", "flywheel-exporter")
UPDATER = pod_labels("k8s/features/updater.yaml", "flywheel-feature-updater")
CODE_CLIENT = helm()["runLauncher"]["config"]["k8sRunLauncher"]["runK8sConfig"]["podTemplateSpecMetadata"]["labels"]
ANYONE = {"app": "anything-else"}


def test_every_pod_denies_by_default() -> None:
    policies = base_policies()
    lonely = {"app.kubernetes.io/name": "something-new"}
    assert not ingress_allowed(policies, ANYONE, lonely, 80)
    assert not ingress_allowed(policies, ANYONE, lonely, 80, source_ns=INGRESS_NS)
    assert not ingress_allowed(policies, SERVING, lonely, 80)
    # the evaluator itself: without the default deny, a pod no policy selects is open
    assert ingress_allowed([p for p in policies if p["spec"]["podSelector"]], ANYONE, lonely, 80)


def test_rendezvous_port_is_reachable_only_from_pods_of_the_same_job() -> None:
    job_a, job_b = trainer_labels("train-a"), trainer_labels("train-b")
    policies = [*base_policies(), *(k8s.rendezvous_network_policy(job_config(j)) for j in ("train-a", "train-b"))]
    port = k8s.RENDEZVOUS_PORT
    assert ingress_allowed(policies, job_a, job_a, port)  # rank 1 -> rank 0 of its own job
    assert ingress_allowed(policies, job_a, job_a, 45123)  # NCCL's run-time ports within the job
    assert not ingress_allowed(policies, job_b, job_a, port)  # another training job
    assert not ingress_allowed(policies, ANYONE, job_a, port)
    assert not ingress_allowed(policies, job_a, job_a, port, source_ns="other")  # same labels, other namespace
    single = k8s.pod_manifest(k8s.example_config())["metadata"]["labels"]
    assert not ingress_allowed(policies, job_a, single, port)  # a single-node pod accepts nothing


def test_code_server_answers_only_webserver_daemon_and_run_pods() -> None:
    values = helm()
    deployment = values["dagster-user-deployments"]["deployments"][0]
    code_server, port = deployment["labels"], deployment["port"]
    clients = {
        "webserver": values["dagsterWebserver"]["labels"],
        "daemon": values["dagsterDaemon"]["labels"],
        "run pod": CODE_CLIENT,
    }
    policies = base_policies()
    for name, labels in clients.items():
        assert ingress_allowed(policies, labels, code_server, port), name
    assert not ingress_allowed(policies, trainer_labels("train-a"), code_server, port)
    assert not ingress_allowed(policies, SERVING, code_server, port)
    assert not ingress_allowed(policies, ANYONE, code_server, port)
    assert not ingress_allowed(policies, CODE_CLIENT, code_server, port, source_ns="other")
    assert not ingress_allowed(policies, clients["webserver"], code_server, 8080)  # only the gRPC port


def test_serving_answers_its_ingress_prometheus_and_dagster_only_on_its_port() -> None:
    policies = base_policies()
    assert ingress_allowed(policies, ANYONE, SERVING, 8080, source_ns=INGRESS_NS)
    assert ingress_allowed(policies, ANYONE, SERVING, 8080, source_ns=MONITORING_NS)
    assert ingress_allowed(policies, CODE_CLIENT, SERVING, 8080)  # rollout changes from run pods
    assert not ingress_allowed(policies, ANYONE, SERVING, 8080)  # any other pod of the namespace
    assert not ingress_allowed(policies, trainer_labels("train-a"), SERVING, 8080)
    assert not ingress_allowed(policies, ANYONE, SERVING, 8080, source_ns="default")
    assert not ingress_allowed(policies, ANYONE, SERVING, 22, source_ns=INGRESS_NS)


def test_metrics_endpoints_answer_prometheus_only() -> None:
    policies = base_policies()
    for labels, port in ((EXPORTER, 9108), (UPDATER, 9109)):
        assert ingress_allowed(policies, ANYONE, labels, port, source_ns=MONITORING_NS)
        assert not ingress_allowed(policies, ANYONE, labels, port, source_ns=INGRESS_NS)
        assert not ingress_allowed(policies, CODE_CLIENT, labels, port)


def test_dagster_ui_answers_the_ingress_controller_only() -> None:
    web = helm()["dagsterWebserver"]
    labels, port = web["labels"], web["service"]["port"]
    policies = base_policies()
    assert ingress_allowed(policies, ANYONE, labels, port, source_ns=INGRESS_NS)
    assert not ingress_allowed(policies, ANYONE, labels, port, source_ns=MONITORING_NS)
    assert not ingress_allowed(policies, SERVING, labels, port)


def test_declared_ports_are_the_ports_the_containers_listen_on() -> None:
    for relative, name, labels in (
        ("k8s/serving/serving.yaml", "flywheel-serving", SERVING),
        ("k8s/observability/exporter.yaml", "flywheel-exporter", EXPORTER),
        ("k8s/features/updater.yaml", "flywheel-feature-updater", UPDATER),
    ):
        doc = next(d for d in documents(relative) if d["kind"] == "Deployment" and d["metadata"]["name"] == name)
        listening = {p["containerPort"] for c in doc["spec"]["template"]["spec"]["containers"] for p in c["ports"]}
        allowed = {
            port["port"]
            for policy in base_policies()
            if policy["spec"]["podSelector"] and _matches(policy["spec"]["podSelector"], labels)
            for rule in policy["spec"].get("ingress") or []
            for port in rule.get("ports") or []
        }
        assert allowed and allowed <= listening, name
