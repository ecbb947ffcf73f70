"""Watching training on Kubernetes (no Dagster): job and pod state, failure descriptions, cleanup.

`JobWatcher` polls a multi-node training job (an Indexed Job or a Kubeflow PyTorchJob) and its pods with
deadlines; `describe_pod` turns a pod into one line of reasons (OOMKilled, ImagePullBackOff,
Unschedulable, Evicted...), exit codes, what to do, and its last log lines. Failures raise
`TrainingFailed` (a FlywheelError) carrying the pods and their log tail; the Dagster resource turns it
into a `Failure`. Every API call passes `_request_timeout`, and `BoundedApi` adds one to the calls that
dagster-k8s makes without (its pod wait), so a stalled API server fails the step instead of hanging it.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from pipelines.errors import FlywheelError
from pipelines.training import k8s as manifests
from pipelines.training.failure import TrainingFailed
from pipelines.training.torchrun import last_lines

log = logging.getLogger("flywheel.training")

HINTS = {
    "OOMKilled": "the container ran out of memory: raise `memory` on the launcher or lower model.batch_size",
    "ImagePullBackOff": "the image cannot be pulled: check the image name/tag and imagePullSecrets",
    "ErrImagePull": "the image cannot be pulled: check the image name/tag and imagePullSecrets",
    "Unschedulable": "no node fits: check GPU capacity, node_selector and tolerations",
    "Evicted": "the node evicted the pod (memory/disk pressure or preemption): re-run",
    "DeadlineExceeded": "activeDeadlineSeconds passed: raise it or train fewer epochs",
}
PYTORCHJOBS = ("kubeflow.org", "v1", "pytorchjobs")  # group, version, plural of the Kubeflow CRD
# Container waiting reasons that never resolve by waiting longer.
BAD_WAITING = frozenset(
    {
        "ImagePullBackOff",
        "ErrImagePull",
        "InvalidImageName",
        "CreateContainerConfigError",
        "CreateContainerError",
        "CrashLoopBackOff",
    }
)


class KubernetesUnavailable(FlywheelError):
    """The Kubernetes API server did not answer a call in time (or the connection failed)."""


def short_error(exc: BaseException) -> str:
    """`Type: first line`, at most 500 characters (API errors carry whole response bodies)."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:500]


def _is_not_found(exc: BaseException) -> bool:
    import kubernetes

    return isinstance(exc, kubernetes.client.ApiException) and exc.status == 404


class BoundedApi:
    """A kubernetes API object (CoreV1Api, BatchV1Api, CustomObjectsApi) whose every call has a timeout.

    A call without `_request_timeout` (dagster-k8s's `wait_for_pod` polls without one) gets `timeout_s`, a
    longer one is cut to it. A followed log stream (`follow=True`) instead gets (connect timeout_s, read
    stream_read_timeout_s): a trainer may be silent for minutes, and dagster-k8s reconnects after a read
    timeout; before each (re)connect one bounded read of the pod checks that the API server still answers.
    A timeout or a failed connection raises KubernetesUnavailable (API errors such as 404 pass unchanged).
    """

    def __init__(self, api: Any, timeout_s: float, stream_read_timeout_s: float) -> None:
        self._api = api
        self.timeout_s = timeout_s
        self.stream_read_timeout_s = stream_read_timeout_s

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._api, name)
        if name.startswith("_") or not callable(method):
            return method

        @functools.wraps(method)
        def bounded(*args: Any, **kwargs: Any) -> Any:
            if kwargs.get("follow"):
                where = args[:2] if len(args) >= 2 else (kwargs.get("name"), kwargs.get("namespace"))
                self._call("read_namespaced_pod", self._api.read_namespaced_pod, tuple(where), {})
                kwargs["_request_timeout"] = (self.timeout_s, self.stream_read_timeout_s)
            else:
                given = kwargs.get("_request_timeout")
                limit = min(given, self.timeout_s) if isinstance(given, int | float) else self.timeout_s
                kwargs["_request_timeout"] = limit
            return self._call(name, method, args, kwargs)

        return bounded

    def _call(self, name: str, method: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
        import urllib3

        kwargs.setdefault("_request_timeout", self.timeout_s)
        try:
            return method(*args, **kwargs)
        except urllib3.exceptions.HTTPError as exc:  # timeouts, refused or dropped connections
            raise KubernetesUnavailable(
                f"the Kubernetes API server did not answer {name} within {self.timeout_s:g}s "
                f"({short_error(exc)}): check that it is reachable and not overloaded, then re-run the step"
            ) from exc


# ---- pod descriptions --------------------------------------------------------------------------------


@dataclass(frozen=True)
class PodReport:
    name: str
    summary: str  # one line: phase, reasons, exit codes, what to do
    log_tail: str = ""  # the container's last log lines ("" when none or unreadable)
    note: str = ""  # why the logs are missing, when they could not be read

    @property
    def text(self) -> str:
        out = self.summary
        if self.log_tail:
            out += "\nlast log lines:\n" + self.log_tail
        if self.note:
            out += f"\n({self.note})"
        return out


def describe_pod_object(pod: Any) -> str:
    """Phase, reasons and exit codes of one pod (a kubernetes V1Pod), in one line, with what to do."""
    st = pod.status
    bits = [f"pod {pod.metadata.name}: phase {getattr(st, 'phase', None)}"]
    if st and st.reason:
        bits.append(f"reason {st.reason}{': ' + st.message if st.message else ''}")
    for cond in (st.conditions or []) if st else []:
        if cond.type == "PodScheduled" and cond.status == "False":
            bits.append(f"not scheduled ({cond.reason}: {cond.message})")
    for cs in (st.container_statuses or []) if st else []:
        state = cs.state
        if state and state.waiting and state.waiting.reason:
            bits.append(f"container {cs.name} waiting: {state.waiting.reason} ({state.waiting.message or ''})")
        term = (state.terminated if state else None) or (cs.last_state.terminated if cs.last_state else None)
        if term:
            bits.append(f"container {cs.name} terminated: {term.reason}, exit code {term.exit_code}")
    reasons = " ".join(bits)
    hints = [hint for key, hint in HINTS.items() if key in reasons]
    return "; ".join(bits) + (f". What to do: {'; '.join(hints)}" if hints else "")


def describe_pod(core: Any, name: str, namespace: str, tail_lines: int, timeout: float, pod: Any = None) -> PodReport:
    """describe_pod_object + the container's last log lines; never raises (it runs while reporting a failure)."""
    try:
        pod = pod or core.read_namespaced_pod(name, namespace, _request_timeout=timeout)
    except Exception as exc:
        if _is_not_found(exc):
            return PodReport(
                name, f"pod {name} no longer exists (deleted by hand, evicted or preempted); re-run the step"
            )
        return PodReport(name, f"pod {name} could not be read: {short_error(exc)}")
    summary = describe_pod_object(pod)
    try:
        raw = core.read_namespaced_pod_log(name, namespace, tail_lines=tail_lines * 3, _request_timeout=timeout)
    except Exception as exc:
        return PodReport(name, summary, note=f"logs not readable: {short_error(exc)}")
    return PodReport(name, summary, "\n".join(last_lines(str(raw), tail_lines)))


def pod_failure(
    core: Any, name: str, namespace: str, what: str, cause: BaseException, tail_lines: int, timeout: float
) -> TrainingFailed:
    """The error for a failed single training pod (`what` describes the launch): its report and the cause."""
    report = describe_pod(core, name, namespace, tail_lines, timeout)
    return TrainingFailed(
        f"training pod {namespace}/{name} failed ({what}): {report.text}\n(cause: {short_error(cause)})",
        pods=[f"{namespace}/{name}"],
        log_tail=report.log_tail,
    )


def load_kube_config(incluster: bool | None, config_file: str | None, context: str | None) -> None:
    """In-cluster credentials (a pod's service account) or a kubeconfig; None = in-cluster inside a pod."""
    import kubernetes

    from pipelines.config import setting

    if incluster or (incluster is None and not config_file and setting("KUBERNETES_SERVICE_HOST")):
        kubernetes.config.load_incluster_config()
    else:
        kubernetes.config.load_kube_config(config_file=config_file, context=context)


def delete_quietly(call: Callable[[], object]) -> None:
    """Best effort: a cleanup error must not hide the step's own error (ttlSecondsAfterFinished is the backstop)."""
    try:
        call()
    except Exception as exc:
        if not _is_not_found(exc):
            log.warning("cleanup failed: %s", short_error(exc))


# ---- multi-node jobs ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class WatchSettings:
    kind: Literal["indexed_job", "pytorchjob"] = "indexed_job"
    startup_timeout_s: float = 900.0  # longest wait for the master pod to run
    poll_interval_s: float = 5.0
    request_timeout_s: float = 30.0  # of every API call
    log_tail_lines: int = 30
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False)


class JobWatcher:
    """Polls a training job and its pods with deadlines; raises TrainingFailed with the reason when it fails.

    core, batch, custom: kubernetes CoreV1Api, BatchV1Api and CustomObjectsApi (or stand-ins with the same
    methods).
    """

    def __init__(self, core: Any, batch: Any, custom: Any, cfg: manifests.TrainingPodConfig, settings: WatchSettings):
        self.core, self.batch, self.custom = core, batch, custom
        self.cfg, self.settings = cfg, settings
        self.t = settings.request_timeout_s

    @property
    def where(self) -> str:
        return f"{self.cfg.namespace}/{self.cfg.name}"

    def create(self, cleanup: list[Callable[[], object]], networking: Any = None) -> None:
        """Creates the job (a PyTorchJob, or a headless Service + an Indexed Job), adding to `cleanup` the
        delete of each object as soon as it exists, in the order to run them (a half-created job is undone).

        networking (NetworkingV1Api): first the job's NetworkPolicy, so that its pods can reach each other
        where deploy/k8s/base/networkpolicy.yaml denies ingress to training pods."""
        ns, name, t = self.cfg.namespace, self.cfg.name, self.t
        if networking is not None:
            policy = manifests.rendezvous_network_policy(self.cfg)
            networking.create_namespaced_network_policy(ns, policy, _request_timeout=t)
            cleanup.append(lambda: networking.delete_namespaced_network_policy(name, ns, _request_timeout=t))
        if self.settings.kind == "pytorchjob":
            body = manifests.pytorch_job_manifest(self.cfg)
            self.custom.create_namespaced_custom_object(
                "kubeflow.org", "v1", ns, "pytorchjobs", body, _request_timeout=t
            )
            cleanup.insert(
                0,
                lambda: self.custom.delete_namespaced_custom_object(
                    *PYTORCHJOBS[:2], ns, PYTORCHJOBS[2], name, propagation_policy="Background", _request_timeout=t
                ),
            )
            return
        service, job = manifests.indexed_job_manifests(self.cfg)
        self.core.create_namespaced_service(ns, service, _request_timeout=t)
        cleanup.append(lambda: self.core.delete_namespaced_service(self.cfg.service_name, ns, _request_timeout=t))
        self.batch.create_namespaced_job(ns, job, _request_timeout=t)
        cleanup.insert(
            0, lambda: self.batch.delete_namespaced_job(name, ns, propagation_policy="Background", _request_timeout=t)
        )

    def pods(self) -> list:
        selector = f"{manifests.JOB_LABEL}={self.cfg.name}"
        return list(
            self.core.list_namespaced_pod(self.cfg.namespace, label_selector=selector, _request_timeout=self.t).items
        )

    @staticmethod
    def is_master(pod: Any) -> bool:
        """Pod 0 of an Indexed Job, or the Master replica of a PyTorchJob: global rank 0 reports to Dagster."""
        meta = pod.metadata
        index = (meta.annotations or {}).get("batch.kubernetes.io/job-completion-index")
        replica = (meta.labels or {}).get("training.kubeflow.org/replica-type", "")
        return index == "0" or replica.lower() == "master"

    def wait_for_master_running(self) -> str:
        """The master pod's name once it runs (or already ended); raises when the job cannot start in time."""
        deadline = time.monotonic() + self.settings.startup_timeout_s
        while True:
            self.job_state()  # a job that already failed (e.g. deadline) ends the wait
            for pod in self.pods():
                self._raise_if_broken(pod)
                if self.is_master(pod) and pod.status and pod.status.phase in ("Running", "Succeeded", "Failed"):
                    return pod.metadata.name
            if time.monotonic() > deadline:
                pods = self.pods()
                pending = [describe_pod_object(p) for p in pods] or ["no pod was created"]
                raise TrainingFailed(
                    f"training job {self.where} did not start within {self.settings.startup_timeout_s:.0f}s: "
                    + "; ".join(pending)
                    + ". Check GPU capacity, node selectors and tolerations.",
                    job=self.where,
                    pods=[p.metadata.name for p in pods],
                )
            self.settings.sleep(self.settings.poll_interval_s)

    def _raise_if_broken(self, pod: Any) -> None:
        for cs in (pod.status.container_statuses or []) if pod.status else []:
            waiting = cs.state.waiting if cs.state else None
            if waiting and waiting.reason in BAD_WAITING:
                raise self.failure(f"pod {pod.metadata.name} cannot start")

    def job_state(self) -> str:
        """running | succeeded (raises TrainingFailed when the job failed or was deleted)."""
        try:
            if self.settings.kind == "pytorchjob":
                return self._pytorchjob_state()
            job = self.batch.read_namespaced_job(self.cfg.name, self.cfg.namespace, _request_timeout=self.t)
        except Exception as exc:
            if _is_not_found(exc):
                raise TrainingFailed(
                    f"training job {self.where} was deleted while running (by hand, or by its TTL): re-run the "
                    "step; it resumes from the last checkpoint when checkpoint_claim is set",
                    job=self.where,
                ) from exc
            raise
        status = job.status
        for cond in status.conditions or []:
            if cond.status == "True" and cond.type == "Failed":
                raise self.failure(f"Job failed: {cond.reason}: {cond.message}")
            if cond.status == "True" and cond.type == "Complete":
                return "succeeded"
        if (status.succeeded or 0) >= self.cfg.nodes:
            return "succeeded"
        if (status.failed or 0) > self.cfg.backoff_limit:
            raise self.failure(f"{status.failed} pod(s) failed")
        return "running"

    def _pytorchjob_state(self) -> str:
        obj = self.custom.get_namespaced_custom_object(
            *PYTORCHJOBS[:2], self.cfg.namespace, PYTORCHJOBS[2], self.cfg.name, _request_timeout=self.t
        )
        conditions = {c["type"]: c for c in obj.get("status", {}).get("conditions", []) if c.get("status") == "True"}
        if "Succeeded" in conditions:
            return "succeeded"
        if "Failed" in conditions:
            raise self.failure(f"PyTorchJob failed: {conditions['Failed'].get('message', '')}")
        return "running"

    def wait_for_completion(self) -> None:
        deadline = time.monotonic() + self.cfg.active_deadline_seconds + 120
        while self.job_state() != "succeeded":
            for pod in self.pods():
                self._raise_if_broken(pod)
                if pod.status and pod.status.phase == "Failed" and self.cfg.backoff_limit == 0:
                    raise self.failure(f"pod {pod.metadata.name} failed")
            if time.monotonic() > deadline:
                raise self.failure("no result within activeDeadlineSeconds")
            self.settings.sleep(self.settings.poll_interval_s)

    def failure(self, headline: str) -> TrainingFailed:
        """The error for a failed job: the headline, then each pod's description and last log lines."""
        parts = [f"training job {self.where} failed: {headline}"]
        try:
            pods = self.pods()
        except Exception as exc:
            pods = []
            parts.append(f"(pods not readable: {short_error(exc)})")
        reports = [
            describe_pod(self.core, p.metadata.name, self.cfg.namespace, self.settings.log_tail_lines, self.t, p)
            for p in pods
        ]
        parts += [r.text for r in reports]
        tail = "\n".join(f"--- {r.name}\n{r.log_tail}" for r in reports if r.log_tail)
        return TrainingFailed("\n".join(parts), job=self.where, pods=[r.name for r in reports], log_tail=tail)
