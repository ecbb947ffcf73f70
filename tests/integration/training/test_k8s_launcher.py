"""The Kubernetes launcher against a FAKE Kubernetes API server (tests/fakes/k8s_api.py).

No Kubernetes can run here, so these tests use a fake API server that the official `kubernetes` client
talks to over HTTP (kubeconfig and all). They check what the launcher does with the API: create, watch,
log streaming (Dagster Pipes messages travel in the pod log), failure reporting, cancellation, cleanup.
"""

import _thread
import sys
import threading
import time
from pathlib import Path

import pytest
from dagster import AssetExecutionContext, MaterializeResult, asset, materialize

from resources.training import K8sTrainingLauncher, TrainingLauncher
from tests.fakes.k8s_api import FakeKubernetesAPI

PIPES_SCRIPT = """
import os
from dagster_pipes import open_dagster_pipes
with open_dagster_pipes() as pipes:
    print("plain worker output from index", os.environ.get("JOB_COMPLETION_INDEX", "-"), flush=True)
    pipes.log.info("hello from the fake pod")
    pipes.report_custom_message({"type": "epoch", "epoch": 1.0})
    record = {"model_name": "transactions", "model_version": "7", "mlflow_run_id": "r1",
              "lakefs_repository": "flywheel", "lakefs_commit": "c" * 64, "spec_hash": "h",
              "metrics": {"test_auc": 0.9}}
    pipes.report_asset_materialization(metadata={"trained_model": {"raw_value": record, "type": "json"},
                                                 "model_version": "7"})
"""


@asset
def launched(context: AssetExecutionContext, trainer: TrainingLauncher) -> MaterializeResult:
    invocation = trainer.launch(context, ["--data", "lakefs://flywheel/" + "c" * 64 + "/"], {"SOME_SETTING": "1"})
    results = [r for r in invocation.get_results() if isinstance(r, MaterializeResult)]
    return MaterializeResult(metadata=dict(results[-1].metadata))


def launcher(kubeconfig: Path, **overrides) -> K8sTrainingLauncher:
    settings = {
        "image": "registry.example.com/flywheel:test",
        "namespace": "flywheel",
        "gpus_per_node": 2,
        "kubeconfig_file": str(kubeconfig),
        "poll_interval_s": 0.2,
        "startup_timeout_s": 20,
        "node_selector": {"nvidia.com/gpu.present": "true"},
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
    }
    return K8sTrainingLauncher(**{**settings, **overrides})


def run(trainer: K8sTrainingLauncher):
    return materialize([launched], resources={"trainer": trainer}, raise_on_error=False)


def failure_text(result) -> str:
    events = result.get_step_failure_events()
    assert events, "the step should have failed"
    return events[0].step_failure_data.error.to_string()


def failure_metadata(result) -> dict:
    data = result.get_step_failure_events()[0].step_failure_data.user_failure_data
    return {k: v.value for k, v in (data.metadata if data else {}).items()}


@pytest.fixture
def fake_api(tmp_path: Path):
    with FakeKubernetesAPI(script=[sys.executable, "-c", PIPES_SCRIPT]) as api:
        api.kubeconfig_path = api.kubeconfig(tmp_path / "kubeconfig")
        yield api


def test_single_gpu_pod_runs_through_pipes_and_is_cleaned_up(fake_api) -> None:
    result = run(launcher(fake_api.kubeconfig_path))
    assert result.success
    mat = result.asset_materializations_for_node("launched")[0]
    assert mat.metadata["trained_model"].value["model_version"] == "7"  # reported from inside the pod
    kinds = [kind for kind, _ in fake_api.created]
    assert kinds == ["Pod"]
    assert fake_api.deleted == fake_api.created  # deleted after completion
    pod = next(p for p in fake_api.requests if p[0] == "POST")
    assert pod[1] == "/api/v1/namespaces/flywheel/pods"


def test_pod_spec_sent_to_the_api_is_restricted_and_requests_gpus(fake_api) -> None:
    fake_api.behaviour = "hang"
    trainer = launcher(fake_api.kubeconfig_path, startup_timeout_s=5)
    t = threading.Thread(target=run, args=(trainer,), daemon=True)
    t.start()
    deadline = time.monotonic() + 20
    while not fake_api.pods and time.monotonic() < deadline:
        time.sleep(0.05)
    pod = next(iter(fake_api.pods.values())).body
    for p in list(fake_api.pods.values()):
        fake_api.delete_pod(p.namespace, p.name)  # ends the run
    t.join(timeout=30)
    spec = pod["spec"]
    container = spec["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "2"
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert spec["serviceAccountName"] == "flywheel-trainer"
    assert spec["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert spec["tolerations"][0]["key"] == "nvidia.com/gpu"
    shm = next(v for v in spec["volumes"] if v["name"] == "dshm")
    assert shm["emptyDir"]["medium"] == "Memory"
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert "DAGSTER_PIPES_CONTEXT" in env and env["SOME_SETTING"] == "1"
    assert "--nproc-per-node" in container["command"] and "2" in container["command"]


def test_oom_killed_pod_reason_exit_code_and_log_tail_reach_the_dagster_error(fake_api) -> None:
    fake_api.behaviour = "oom"
    result = run(launcher(fake_api.kubeconfig_path))
    assert not result.success
    text = failure_text(result)
    assert "OOMKilled" in text and "exit code 137" in text
    assert "allocating a bigger batch" in text  # last log lines
    assert "raise `memory`" in text  # what to do
    metadata = failure_metadata(result)
    assert metadata["pod"].startswith("flywheel/") and "allocating a bigger batch" in metadata["log_tail"]
    assert fake_api.deleted == fake_api.created


def test_image_pull_backoff_is_reported_not_waited_out(fake_api) -> None:
    fake_api.behaviour = "image_pull_backoff"
    started = time.monotonic()
    result = run(launcher(fake_api.kubeconfig_path))
    assert not result.success
    text = failure_text(result)
    assert "ImagePullBackOff" in text and "registry.example.com/flywheel:test" in text
    assert time.monotonic() - started < 30
    assert fake_api.deleted == fake_api.created


def test_a_deleted_pod_fails_the_run_instead_of_hanging(fake_api) -> None:
    fake_api.behaviour = "hang"

    def delete_when_running() -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            pods = list(fake_api.pods.values())
            if pods and pods[0].body["status"]["phase"] == "Running":
                time.sleep(0.5)
                fake_api.delete_pod(pods[0].namespace, pods[0].name)
                return
            time.sleep(0.05)

    threading.Thread(target=delete_when_running, daemon=True).start()
    started = time.monotonic()
    result = run(launcher(fake_api.kubeconfig_path))
    assert not result.success
    assert "no longer exists" in failure_text(result) or "404" in failure_text(result)
    assert time.monotonic() - started < 30


def test_indexed_job_with_headless_service_streams_rank0_logs_and_cleans_up(fake_api) -> None:
    result = run(launcher(fake_api.kubeconfig_path, nodes=2))
    assert result.success
    mat = result.asset_materializations_for_node("launched")[0]
    assert mat.metadata["model_version"].value == "7"
    assert sorted(kind for kind, _ in fake_api.created) == ["Job", "NetworkPolicy", "Pod", "Pod", "Service"]
    deleted = {kind for kind, _ in fake_api.deleted}
    assert {"Job", "Service", "Pod", "NetworkPolicy"} <= deleted
    assert not fake_api.jobs and not fake_api.services and not fake_api.pods and not fake_api.network_policies
    policy = fake_api.requests.index(("POST", "/apis/networking.k8s.io/v1/namespaces/flywheel/networkpolicies"))
    assert policy < fake_api.requests.index(("POST", "/apis/batch/v1/namespaces/flywheel/jobs"))  # before any pod


def test_indexed_job_failure_names_the_pod_reason(fake_api) -> None:
    fake_api.behaviour = "oom"
    result = run(launcher(fake_api.kubeconfig_path, nodes=2))
    assert not result.success
    text = failure_text(result)
    assert "OOMKilled" in text and "exit code 137" in text
    metadata = failure_metadata(result)
    assert metadata["job"].startswith("flywheel/flywheel-train-")
    assert "allocating a bigger batch" in metadata["log_tail"]
    assert not fake_api.jobs and not fake_api.services


def test_kubeflow_pytorchjob_runs_through_pipes_and_is_cleaned_up(fake_api) -> None:
    result = run(launcher(fake_api.kubeconfig_path, nodes=2, multinode="pytorchjob"))
    assert result.success
    assert result.asset_materializations_for_node("launched")[0].metadata["model_version"].value == "7"
    assert sorted(kind for kind, _ in fake_api.created) == ["NetworkPolicy", "Pod", "Pod", "PyTorchJob"]
    assert ("PyTorchJob", next(n for k, n in fake_api.created if k == "PyTorchJob")) in fake_api.deleted
    assert not fake_api.pytorchjobs and not fake_api.pods and not fake_api.network_policies


def test_kubeflow_pytorchjob_failure_names_the_pod_reason(fake_api) -> None:
    fake_api.behaviour = "oom"
    result = run(launcher(fake_api.kubeconfig_path, nodes=2, multinode="pytorchjob"))
    assert not result.success
    assert "OOMKilled" in failure_text(result)
    assert not fake_api.pytorchjobs


def test_cancelled_run_deletes_its_job_and_service(fake_api) -> None:
    fake_api.behaviour = "hang"

    def cancel_when_running() -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if any(p.body["status"]["phase"] == "Running" for p in list(fake_api.pods.values())):
                time.sleep(0.5)
                _thread.interrupt_main()  # what Dagster's run termination does to the step (SIGINT)
                return
            time.sleep(0.05)

    threading.Thread(target=cancel_when_running, daemon=True).start()
    try:
        result = run(launcher(fake_api.kubeconfig_path, nodes=2))
        assert not result.success
    except KeyboardInterrupt:
        pass
    assert ("Job", next(n for k, n in fake_api.created if k == "Job")) in fake_api.deleted
    assert not fake_api.jobs and not fake_api.services and not fake_api.pods


@pytest.mark.parametrize("stall_after", ["pod-created", "log-stream"])
def test_a_stalled_api_server_fails_the_step_within_the_bound(fake_api, stall_after: str) -> None:
    """The API server accepts connections and never answers, first during the pod wait (dagster-k8s polls
    without a request timeout of its own), then while the pod's log is streamed: the step fails with the
    reason within a bound set by request_timeout_s / log_read_timeout_s, instead of hanging."""
    fake_api.behaviour = "hang"
    fake_api.stall_after = stall_after
    trainer = launcher(fake_api.kubeconfig_path, request_timeout_s=0.5, log_read_timeout_s=1.0, startup_timeout_s=10)
    outcome: dict = {}
    step = threading.Thread(target=lambda: outcome.update(result=run(trainer)), daemon=True)
    started = time.monotonic()
    step.start()
    step.join(timeout=90)
    assert not step.is_alive(), f"the step still waits on a stalled API server after {time.monotonic() - started:.0f}s"
    assert fake_api.stalled_requests, "the fake API server never stalled"
    text = failure_text(outcome["result"])
    assert "the Kubernetes API server did not answer" in text and "within 0.5s" in text
