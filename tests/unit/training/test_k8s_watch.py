"""The Kubernetes job watcher, pod reports and cleanup (pipelines/training/k8s_watch.py), with no server.

Pods and Jobs are real `kubernetes.client` models; the API objects are small stand-ins that answer from
a dict and record each call, and refuse any call without `_request_timeout`.
"""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import Any

import pytest
from kubernetes.client import (
    ApiException,
    V1ContainerState,
    V1ContainerStateRunning,
    V1ContainerStateTerminated,
    V1ContainerStateWaiting,
    V1ContainerStatus,
    V1Job,
    V1JobCondition,
    V1JobStatus,
    V1ObjectMeta,
    V1Pod,
    V1PodCondition,
    V1PodList,
    V1PodStatus,
)

from pipelines.errors import FlywheelError
from pipelines.training import k8s
from pipelines.training.failure import TrainingFailed
from pipelines.training.k8s_watch import (
    BoundedApi,
    JobWatcher,
    KubernetesUnavailable,
    WatchSettings,
    delete_quietly,
    describe_pod,
    describe_pod_object,
    pod_failure,
)
from pipelines.training.torchrun import PIPES_MARKER

NS = "flywheel"


def pod(
    name: str,
    phase: str = "Running",
    *,
    index: str | None = None,
    waiting: str | None = None,
    terminated: tuple[str, int] | None = None,
    unschedulable: str | None = None,
    replica: str | None = None,
) -> V1Pod:
    state = V1ContainerState(running=V1ContainerStateRunning() if phase == "Running" and not waiting else None)
    if waiting:
        state = V1ContainerState(waiting=V1ContainerStateWaiting(reason=waiting, message=f"{waiting} message"))
    if terminated:
        state = V1ContainerState(terminated=V1ContainerStateTerminated(reason=terminated[0], exit_code=terminated[1]))
    conditions = None
    if unschedulable:
        conditions = [
            V1PodCondition(type="PodScheduled", status="False", reason="Unschedulable", message=unschedulable)
        ]
    status = V1ContainerStatus(name="trainer", image="img", image_id="", ready=True, restart_count=0, state=state)
    labels = {k8s.JOB_LABEL: "job-1"}
    if replica:
        labels["training.kubeflow.org/replica-type"] = replica
    annotations = {"batch.kubernetes.io/job-completion-index": index} if index is not None else None
    return V1Pod(
        metadata=V1ObjectMeta(name=name, namespace=NS, labels=labels, annotations=annotations),
        status=V1PodStatus(phase=phase, container_statuses=[status], conditions=conditions),
    )


def not_found() -> ApiException:
    return ApiException(status=404, reason="Not Found")


class Api:
    """Stand-in for CoreV1Api / BatchV1Api / CustomObjectsApi: `answers` maps method name to a value,
    an exception, or a callable; every call is recorded and must carry _request_timeout."""

    def __init__(self, **answers: Any) -> None:
        self.answers = answers
        self.calls: list[tuple[str, tuple, dict]] = []

    def __getattr__(self, method: str):
        if method.startswith("__"):
            raise AttributeError(method)

        def call(*args: Any, **kwargs: Any) -> Any:
            assert kwargs.get("_request_timeout"), f"{method} called without _request_timeout"
            self.calls.append((method, args, kwargs))
            answer = self.answers.get(method)
            if isinstance(answer, BaseException):
                raise answer
            return answer(*args, **kwargs) if callable(answer) else answer

        return call

    def called(self) -> list[str]:
        return [name for name, _, _ in self.calls]


def cfg(**overrides: Any) -> k8s.TrainingPodConfig:
    return k8s.TrainingPodConfig(
        **{"name": "job-1", "image": "img", "entry_args": [], "nodes": 2, "namespace": NS, **overrides}
    )


def watcher(core: Api, batch: Api | None = None, custom: Api | None = None, **settings: Any) -> JobWatcher:
    s = {"request_timeout_s": 7.0, "poll_interval_s": 0.0, "log_tail_lines": 3, "sleep": lambda _: None, **settings}
    return JobWatcher(core, batch or Api(), custom or Api(), cfg(), WatchSettings(**s))


def job(*conditions: tuple[str, str, str], succeeded: int = 0, failed: int = 0) -> V1Job:
    conds = [V1JobCondition(type=t, status="True", reason=r, message=m) for t, r, m in conditions]
    return V1Job(status=V1JobStatus(conditions=conds or None, succeeded=succeeded, failed=failed))


# ---- pod reports ------------------------------------------------------------------------------------


def test_oom_killed_pod_says_reason_exit_code_and_what_to_do() -> None:
    text = describe_pod_object(pod("p-0", "Failed", terminated=("OOMKilled", 137)))
    assert "pod p-0: phase Failed" in text
    assert "container trainer terminated: OOMKilled, exit code 137" in text
    assert "What to do: the container ran out of memory: raise `memory`" in text


def test_unschedulable_and_image_pull_pods_get_their_hints() -> None:
    text = describe_pod_object(pod("p-0", "Pending", unschedulable="0/3 nodes have nvidia.com/gpu"))
    assert "not scheduled (Unschedulable: 0/3 nodes have nvidia.com/gpu)" in text and "no node fits" in text
    text = describe_pod_object(pod("p-0", "Pending", waiting="ImagePullBackOff"))
    assert "waiting: ImagePullBackOff" in text and "check the image name/tag" in text


def test_describe_pod_adds_the_log_tail_without_pipes_messages() -> None:
    log = "\n".join([f"line {i}" for i in range(10)] + [f'{{"{PIPES_MARKER}": "0.1", "method": "log"}}', "", "last"])
    core = Api(read_namespaced_pod=pod("p-0", "Failed", terminated=("Error", 1)), read_namespaced_pod_log=log)
    report = describe_pod(core, "p-0", NS, tail_lines=3, timeout=7.0)
    assert report.log_tail == "line 8\nline 9\nlast"
    assert "exit code 1" in report.summary and report.text.endswith("last log lines:\nline 8\nline 9\nlast")
    assert all(kwargs["_request_timeout"] == 7.0 for _, _, kwargs in core.calls)


def test_describe_pod_never_raises() -> None:
    gone = describe_pod(Api(read_namespaced_pod=not_found()), "p-0", NS, 3, 7.0)
    assert "no longer exists" in gone.text and "re-run the step" in gone.text
    broken = describe_pod(Api(read_namespaced_pod=TimeoutError("read timed out")), "p-0", NS, 3, 7.0)
    assert "could not be read: TimeoutError: read timed out" in broken.text
    no_logs = describe_pod(Api(read_namespaced_pod_log=ApiException(status=500)), "p-0", NS, 3, 7.0, pod("p-0"))
    assert no_logs.log_tail == "" and "logs not readable: ApiException" in no_logs.text


def test_pod_failure_is_a_flywheel_error_with_pod_and_tail() -> None:
    core = Api(read_namespaced_pod=pod("p-0", "Failed", terminated=("OOMKilled", 137)), read_namespaced_pod_log="a\nb")
    err = pod_failure(core, "p-0", NS, "Kubernetes pod", RuntimeError("stream ended"), 3, 7.0)
    assert isinstance(err, FlywheelError)
    assert err.pods == [f"{NS}/p-0"] and err.log_tail == "a\nb"
    assert "training pod flywheel/p-0 failed (Kubernetes pod)" in str(err) and "RuntimeError: stream ended" in str(err)


# ---- the job watcher --------------------------------------------------------------------------------


def test_failed_job_raises_with_every_pods_reason_and_log_tail() -> None:
    pods = V1PodList(items=[pod("job-1-0", "Failed", index="0", terminated=("OOMKilled", 137)), pod("job-1-1")])
    core = Api(list_namespaced_pod=pods, read_namespaced_pod_log="epoch 1\nepoch 2")
    batch = Api(read_namespaced_job=job(("Failed", "BackoffLimitExceeded", "Job has reached the backoff limit")))
    with pytest.raises(TrainingFailed) as caught:
        watcher(core, batch).job_state()
    err = caught.value
    assert "training job flywheel/job-1 failed: Job failed: BackoffLimitExceeded" in str(err)
    assert "OOMKilled, exit code 137" in str(err) and "raise `memory`" in str(err)
    assert err.job == "flywheel/job-1" and err.pods == ["job-1-0", "job-1-1"]
    assert err.log_tail == "--- job-1-0\nepoch 1\nepoch 2\n--- job-1-1\nepoch 1\nepoch 2"
    selector = next(kw for name, _, kw in core.calls if name == "list_namespaced_pod")["label_selector"]
    assert selector == f"{k8s.JOB_LABEL}=job-1"


def test_job_state_running_succeeded_deleted() -> None:
    assert watcher(Api(), Api(read_namespaced_job=job())).job_state() == "running"
    assert watcher(Api(), Api(read_namespaced_job=job(("Complete", "", "")))).job_state() == "succeeded"
    assert watcher(Api(), Api(read_namespaced_job=job(succeeded=2))).job_state() == "succeeded"
    with pytest.raises(TrainingFailed, match="was deleted while running"):
        watcher(Api(), Api(read_namespaced_job=not_found())).job_state()
    with pytest.raises(ApiException):  # anything else is not ours to explain
        watcher(Api(), Api(read_namespaced_job=ApiException(status=500))).job_state()


def test_pytorchjob_state_from_its_conditions() -> None:
    def obj(*conds: dict) -> dict:
        return {"status": {"conditions": list(conds)}}

    kind = {"kind": "pytorchjob"}
    running = Api(get_namespaced_custom_object=obj({"type": "Running", "status": "True"}))
    assert watcher(Api(), custom=running, **kind).job_state() == "running"
    done = Api(get_namespaced_custom_object=obj({"type": "Succeeded", "status": "True"}))
    assert watcher(Api(), custom=done, **kind).job_state() == "succeeded"
    failed = Api(get_namespaced_custom_object=obj({"type": "Failed", "status": "True", "message": "pod x failed"}))
    core = Api(list_namespaced_pod=V1PodList(items=[]))
    with pytest.raises(TrainingFailed, match="PyTorchJob failed: pod x failed"):
        watcher(core, custom=failed, **kind).job_state()


def test_master_pod_is_found_for_both_job_kinds() -> None:
    pods = V1PodList(items=[pod("job-1-1", index="1"), pod("job-1-0", index="0")])
    w = watcher(Api(list_namespaced_pod=pods), Api(read_namespaced_job=job()))
    assert w.wait_for_master_running() == "job-1-0"
    pods = V1PodList(items=[pod("job-1-worker-0", replica="worker"), pod("job-1-master-0", replica="Master")])
    custom = Api(get_namespaced_custom_object={"status": {}})
    w = watcher(Api(list_namespaced_pod=pods), custom=custom, kind="pytorchjob")
    assert w.wait_for_master_running() == "job-1-master-0"


def test_a_pod_that_cannot_start_is_reported_not_waited_out() -> None:
    pods = V1PodList(items=[pod("job-1-0", "Pending", index="0", waiting="ImagePullBackOff")])
    w = watcher(Api(list_namespaced_pod=pods), Api(read_namespaced_job=job()), startup_timeout_s=3600)
    with pytest.raises(TrainingFailed, match="pod job-1-0 cannot start") as caught:
        w.wait_for_master_running()
    assert "ImagePullBackOff" in str(caught.value)


def test_start_deadline_names_the_pending_pods() -> None:
    pods = V1PodList(items=[pod("job-1-0", "Pending", index="0", unschedulable="0/2 nodes are available")])
    sleeps: list[float] = []
    w = watcher(
        Api(list_namespaced_pod=pods),
        Api(read_namespaced_job=job()),
        startup_timeout_s=0.0,
        poll_interval_s=0.5,
        sleep=sleeps.append,
    )
    with pytest.raises(TrainingFailed, match="did not start within 0s") as caught:
        w.wait_for_master_running()
    assert "Unschedulable: 0/2 nodes are available" in str(caught.value) and caught.value.pods == ["job-1-0"]


def test_completion_fails_fast_on_a_failed_pod() -> None:
    pods = V1PodList(items=[pod("job-1-1", "Failed", index="1", terminated=("Error", 3))])
    w = watcher(Api(list_namespaced_pod=pods, read_namespaced_pod_log=""), Api(read_namespaced_job=job()))
    with pytest.raises(TrainingFailed, match="pod job-1-1 failed"):
        w.wait_for_completion()
    assert watcher(Api(), Api(read_namespaced_job=job(("Complete", "", "")))).wait_for_completion() is None


# ---- creating and deleting --------------------------------------------------------------------------


def test_indexed_job_creation_registers_each_delete_as_soon_as_the_object_exists() -> None:
    core, batch = Api(), Api(create_namespaced_job=ApiException(status=422, reason="Invalid"))
    cleanup: list = []
    with pytest.raises(ApiException):
        watcher(core, batch).create(cleanup)
    assert core.called() == ["create_namespaced_service"] and len(cleanup) == 1  # the Service is undone
    for delete in cleanup:
        delete()
    assert core.called()[-1] == "delete_namespaced_service"

    core, batch, cleanup = Api(), Api(), []
    watcher(core, batch).create(cleanup)
    for delete in cleanup:
        delete()
    assert batch.called() == ["create_namespaced_job", "delete_namespaced_job"]  # the Job goes first
    assert core.called() == ["create_namespaced_service", "delete_namespaced_service"]


def test_pytorchjob_creation_and_delete() -> None:
    custom, cleanup = Api(), []
    watcher(Api(), custom=custom, kind="pytorchjob").create(cleanup)
    cleanup[0]()
    (create, args, _), (delete, dargs, dkw) = custom.calls
    assert create == "create_namespaced_custom_object" and args[:4] == ("kubeflow.org", "v1", NS, "pytorchjobs")
    assert args[4]["kind"] == "PyTorchJob" and delete == "delete_namespaced_custom_object"
    assert dargs[4] == "job-1" and dkw["propagation_policy"] == "Background"


def test_delete_quietly_never_raises(caplog: pytest.LogCaptureFixture) -> None:
    def gone() -> None:
        raise not_found()

    def broken() -> None:
        raise ApiException(status=500, reason="boom")

    with caplog.at_level(logging.WARNING, logger="flywheel.training"):
        delete_quietly(gone)
        assert not caplog.records  # already deleted is fine
        delete_quietly(broken)
    assert "cleanup failed: ApiException" in caplog.text
    done = SimpleNamespace(n=0)
    delete_quietly(lambda: setattr(done, "n", done.n + 1))
    assert done.n == 1


# ---- every call bounded -----------------------------------------------------------------------------


class RawApi:
    """A kubernetes API object as dagster-k8s uses it: calls may come without _request_timeout."""

    def __init__(self, fail: BaseException | None = None) -> None:
        self.calls: list[tuple[str, tuple, dict]] = []
        self.fail = fail
        self.api_client = object()  # a plain attribute passes through

    def list_namespaced_pod(self, *args: Any, **kwargs: Any) -> str:
        self.calls.append(("list_namespaced_pod", args, kwargs))
        if self.fail:
            raise self.fail
        return "pods"

    def read_namespaced_pod(self, *args: Any, **kwargs: Any) -> str:
        self.calls.append(("read_namespaced_pod", args, kwargs))
        return "pod"

    def read_namespaced_pod_log(self, *args: Any, **kwargs: Any) -> str:
        self.calls.append(("read_namespaced_pod_log", args, kwargs))
        return "stream"


def test_bounded_api_gives_every_call_a_timeout() -> None:
    raw = RawApi()
    api = BoundedApi(raw, timeout_s=5.0, stream_read_timeout_s=120.0)
    assert api.list_namespaced_pod(namespace=NS, field_selector="metadata.name=p") == "pods"  # dagster's pod wait
    api.list_namespaced_pod(NS, _request_timeout=2.0)  # a shorter one is kept
    api.list_namespaced_pod(NS, _request_timeout=3600)  # a longer one is cut
    assert [kw["_request_timeout"] for _, _, kw in raw.calls] == [5.0, 2.0, 5.0]
    assert api.api_client is raw.api_client


def test_a_followed_log_stream_checks_the_server_then_reads_with_a_long_silence_bound() -> None:
    raw = RawApi()
    api = BoundedApi(raw, timeout_s=5.0, stream_read_timeout_s=120.0)
    assert api.read_namespaced_pod_log("p-0", NS, follow=True, _preload_content=False, _request_timeout=3600)
    (probe, pargs, pkw), (stream, _, skw) = raw.calls
    assert (probe, pargs, pkw["_request_timeout"]) == ("read_namespaced_pod", ("p-0", NS), 5.0)
    assert stream == "read_namespaced_pod_log" and skw["_request_timeout"] == (5.0, 120.0)


def test_a_timeout_becomes_one_sentence_and_api_errors_pass_unchanged() -> None:
    import urllib3

    stalled = urllib3.exceptions.ReadTimeoutError(None, "/api/v1/pods", "Read timed out. (read timeout=5.0)")
    with pytest.raises(KubernetesUnavailable, match=r"did not answer list_namespaced_pod within 5s") as caught:
        BoundedApi(RawApi(fail=stalled), 5.0, 120.0).list_namespaced_pod(NS)
    assert "re-run the step" in str(caught.value) and isinstance(caught.value, FlywheelError)
    with pytest.raises(ApiException):  # a 404 stays a 404: callers tell "deleted" from "unreachable"
        BoundedApi(RawApi(fail=not_found()), 5.0, 120.0).list_namespaced_pod(NS)
