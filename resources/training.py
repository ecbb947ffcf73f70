"""Training launchers: run `pipelines.training.entry` under torchrun, outside the Dagster process, via Pipes.

Key "trainer" in resources/profiles.py:
  local profile: LocalTrainingLauncher  PipesSubprocessClient running torchrun with `nproc_per_node` workers
  k8s profile:   K8sTrainingLauncher    one GPU pod through dagster-k8s's PipesK8sClient (nodes == 1), or an
                                        Indexed Job + headless Service / a Kubeflow PyTorchJob (nodes > 1)

Both return the Pipes session's results (the trainer's materialization metadata). Failures raise
`dagster.Failure` with what failed, where and what to do: the exit code and the workers' last log lines
(local); the pod's reason (OOMKilled, ImagePullBackOff, Unschedulable, Evicted...), exit code and last log
lines (Kubernetes). Every Kubernetes call has a timeout, waits poll with deadlines, and the job, its pods
and its Service are deleted when the step ends for any reason, cancellation included (TTL is the backstop).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

from dagster import (
    ConfigurableResource,
    Failure,
    MetadataValue,
    PipesClientCompletedInvocation,
    PipesEnvContextInjector,
    PipesSubprocessClient,
    open_pipes_session,
)
from dagster._core.errors import DagsterPipesExecutionError  # not exported at the top level
from dagster_k8s import PipesK8sClient
from pydantic import Field

from pipelines.config import project_root, setting
from pipelines.training import k8s as manifests

PIPES_MARKER = "__dagster_pipes_version"
# Credentials reach Kubernetes pods through Secrets (envFrom `secrets`), never as literal env in a pod spec.
SECRET_ENV = ("LAKEFS_ACCESS_KEY_ID", "LAKEFS_SECRET_ACCESS_KEY", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN")


class TrainingLauncher(ConfigurableResource):
    """Base of the launchers: `launch(context, entry_args, env)` runs the trainer and returns Pipes results."""

    def launch(
        self,
        context,
        entry_args: Sequence[str],
        env: Mapping[str, str],
        extras: Mapping[str, Any] | None = None,
    ) -> PipesClientCompletedInvocation:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError


def _count_setting(name: str, minimum: int, default: int = 1) -> int:
    """A whole-number setting (environment, then .flywheel/stack.env); a bad value is one sentence."""
    raw = setting(name) or ""
    try:
        value = int(raw) if raw.strip() else default
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise Failure(f"{name}={raw!r} is not a whole number >= {minimum}: fix or unset it (default {default})")
    return value


# ---- local: torchrun as a subprocess ----------------------------------------------------------------


class LocalTrainingLauncher(TrainingLauncher):
    """torchrun on this machine: `nproc_per_node` DDP workers (gloo on CPU, NCCL on GPUs)."""

    nproc_per_node: int = Field(
        default=0, ge=0, description="worker processes (GPUs on a GPU machine); 0 = FLYWHEEL_TRAINING_NPROC, then 1"
    )
    max_restarts: int = Field(default=1, ge=0, description="torchrun restarts after a worker dies (resume)")
    device: Literal["auto", "cpu", "cuda"] = Field(default="auto", description="auto: CUDA when available")
    python: str = Field(default="", description="interpreter for torchrun; empty = the one running Dagster")
    extra_args: list[str] = Field(default_factory=list, description="more pipelines.training.entry arguments")
    log_tail_lines: int = Field(default=30, description="worker log lines quoted in a failure")
    timeout_s: float = Field(
        default=6 * 3600, ge=0, description="stop the whole torchrun (workers included) after this long; 0 = no limit"
    )

    def resolved_nproc(self) -> int:
        return self.nproc_per_node or _count_setting("FLYWHEEL_TRAINING_NPROC", minimum=0) or 1

    def _deadline_prefix(self) -> list[str]:
        # PipesSubprocessClient has no timeout: coreutils `timeout` ends torchrun (which stops its workers)
        # with SIGTERM, then SIGKILL a minute later; its exit code 124 names the cause in the failure.
        if not self.timeout_s or shutil.which("timeout") is None:
            return []
        return ["timeout", "--signal=TERM", "--kill-after=60", f"{self.timeout_s:g}s"]

    def command(self, entry_args: Sequence[str], log_dir: str) -> list[str]:
        return [
            *self._deadline_prefix(),
            self.python or sys.executable,
            "-m", "torch.distributed.run",
            "--standalone",
            "--nproc-per-node", str(self.resolved_nproc()),
            "--max-restarts", str(self.max_restarts),
            "--log-dir", log_dir,
            "--tee", "3",  # worker stdout/stderr to the console (Dagster's compute logs) and to log_dir
            "-m", "pipelines.training.entry",
            "--device", self.device,
            *entry_args,
            *self.extra_args,
        ]  # fmt: skip

    def describe(self) -> str:
        return f"local torchrun, {self.resolved_nproc()} process(es), device {self.device}"

    def launch(self, context, entry_args, env, extras=None) -> PipesClientCompletedInvocation:
        log_dir = tempfile.mkdtemp(prefix="flywheel-torchrun-")
        command = self.command(entry_args, log_dir)
        context.log.info("launching " + " ".join(command))
        client = PipesSubprocessClient(cwd=str(project_root()))
        try:
            invocation = client.run(context=context, command=command, env=dict(env), extras=extras)
            shutil.rmtree(log_dir, ignore_errors=True)  # kept only when something failed
            return invocation
        except DagsterPipesExecutionError as exc:
            tail = worker_log_tail(Path(log_dir), self.log_tail_lines)
            why = str(exc)
            if self._deadline_prefix() and "code 124" in why:
                why = f"it ran past timeout_s={self.timeout_s:g}s and was stopped ({why}); raise timeout_s if expected"
            raise Failure(
                description=(
                    f"training failed on this machine ({self.describe()}): {why}. Last worker log lines:\n{tail}\n"
                    "Fix the cause above and re-run; a re-run with the same Dagster run id resumes from the last "
                    "checkpoint."
                ),
                metadata={
                    "torchrun_log_dir": MetadataValue.path(log_dir),
                    "log_tail": MetadataValue.md(f"```\n{tail}\n```"),
                },
            ) from exc


def worker_log_tail(log_dir: Path, lines: int) -> str:
    """The last lines of every worker's stderr/stdout of the newest torchrun attempt (Pipes messages left out)."""
    files = sorted(log_dir.rglob("*.log"), key=lambda p: p.stat().st_mtime)
    out = []
    for path in files[-4:]:
        text = [ln for ln in path.read_text(errors="replace").splitlines() if PIPES_MARKER not in ln and ln.strip()]
        if text:
            out.append(f"--- {path.relative_to(log_dir)}")
            out.extend(text[-lines:])
    return "\n".join(out) or "(no worker output)"


# ---- Kubernetes ------------------------------------------------------------------------------------


class K8sTrainingLauncher(TrainingLauncher):
    """Training on Kubernetes GPU nodes: a pod (one node) or an Indexed Job / PyTorchJob (several nodes).

    Empty `image`, `namespace`, `gpus_per_node` fall back to FLYWHEEL_TRAINING_IMAGE, FLYWHEEL_K8S_NAMESPACE
    and FLYWHEEL_TRAINING_GPUS (deploy/k8s/base/config.yaml).
    """

    image: str = Field(default="", description="training image; empty = FLYWHEEL_TRAINING_IMAGE")
    namespace: str = Field(default="", description="empty = FLYWHEEL_K8S_NAMESPACE, then flywheel")
    nodes: int = Field(default=1, ge=1, description="nodes; 1 = a single pod")
    gpus_per_node: int = Field(
        default=-1, ge=-1, description="nvidia.com/gpu per pod; -1 = FLYWHEEL_TRAINING_GPUS or 1"
    )
    multinode: Literal["indexed_job", "pytorchjob"] = Field(default="indexed_job", description="when nodes > 1")
    max_restarts: int = Field(default=1, ge=0)
    cpu: str = "4"
    memory: str = "16Gi"
    shm_size: str = "8Gi"
    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[dict[str, Any]] = Field(default_factory=list)
    service_account: str = "flywheel-trainer"
    config_maps: list[str] = Field(default_factory=lambda: ["flywheel-env"])
    secrets: list[str] = Field(default_factory=lambda: ["flywheel-lakefs"])
    image_pull_secrets: list[str] = Field(default_factory=list)
    checkpoint_claim: str = Field(default="", description="PVC for checkpoints (survive a rescheduled pod)")
    ttl_seconds_after_finished: int = 3600
    backoff_limit: int = 0
    active_deadline_seconds: int = 24 * 3600
    startup_timeout_s: float = Field(default=900, description="longest wait for the pod(s) to start running")
    poll_interval_s: float = Field(default=5.0, gt=0)
    request_timeout_s: float = Field(default=30.0, gt=0, description="timeout of every Kubernetes API call")
    load_incluster_config: bool | None = None
    kubeconfig_file: str | None = None
    kube_context: str | None = None
    log_tail_lines: int = 30

    def resolved_gpus(self) -> int:
        return self.gpus_per_node if self.gpus_per_node >= 0 else _count_setting("FLYWHEEL_TRAINING_GPUS", minimum=0)

    def resolved_namespace(self) -> str:
        return self.namespace or setting("FLYWHEEL_K8S_NAMESPACE") or "flywheel"

    def describe(self) -> str:
        shape = "pod" if self.nodes == 1 else self.multinode
        return (
            f"Kubernetes {shape}, {self.nodes} node(s) x {self.resolved_gpus()} GPU(s) in {self.resolved_namespace()}"
        )

    def pod_config(
        self, name: str, entry_args: Sequence[str], env: Mapping[str, str], run_id: str
    ) -> manifests.TrainingPodConfig:
        image = self.image or setting("FLYWHEEL_TRAINING_IMAGE") or ""
        if not image:
            raise Failure("no training image configured: set K8sTrainingLauncher.image or FLYWHEEL_TRAINING_IMAGE")
        return manifests.TrainingPodConfig(
            name=name,
            image=image,
            entry_args=list(entry_args),
            namespace=self.resolved_namespace(),
            nodes=self.nodes,
            gpus_per_node=self.resolved_gpus(),
            max_restarts=self.max_restarts,
            cpu=self.cpu,
            memory=self.memory,
            shm_size=self.shm_size,
            node_selector=self.node_selector,
            tolerations=self.tolerations,
            service_account=self.service_account,
            env={k: v for k, v in env.items() if k not in SECRET_ENV},
            config_maps=self.config_maps,
            secrets=self.secrets,
            image_pull_secrets=self.image_pull_secrets,
            ttl_seconds_after_finished=self.ttl_seconds_after_finished,
            backoff_limit=self.backoff_limit,
            active_deadline_seconds=self.active_deadline_seconds,
            checkpoint_claim=self.checkpoint_claim or None,
            labels={manifests.RUN_ID_LABEL: run_id},
        )

    def _load_config(self) -> None:
        import kubernetes

        if self.load_incluster_config or (
            self.load_incluster_config is None and not self.kubeconfig_file and os.getenv("KUBERNETES_SERVICE_HOST")
        ):
            kubernetes.config.load_incluster_config()
        else:
            kubernetes.config.load_kube_config(config_file=self.kubeconfig_file, context=self.kube_context)

    def launch(self, context, entry_args, env, extras=None) -> PipesClientCompletedInvocation:
        name = manifests.dns_label(f"flywheel-train-{context.run_id[:8]}-{context.retry_number}")
        cfg = self.pod_config(name, entry_args, env, context.run_id)
        self._load_config()
        if self.nodes == 1:
            return self._launch_pod(context, cfg, extras)
        return self._launch_job(context, cfg, extras)

    # -- one node: dagster-k8s's PipesK8sClient ---------------------------------------------------------

    def _launch_pod(self, context, cfg: manifests.TrainingPodConfig, extras) -> PipesClientCompletedInvocation:
        import kubernetes

        client = BoundedPipesK8sClient(
            load_incluster_config=self.load_incluster_config,
            kubeconfig_file=self.kubeconfig_file,
            kube_context=self.kube_context,
            poll_interval=self.poll_interval_s,
            startup_timeout_s=self.startup_timeout_s,
            request_timeout_s=self.request_timeout_s,
        )
        namespace = cfg.namespace
        core = kubernetes.client.CoreV1Api()
        t = self.request_timeout_s
        context.log.info(f"launching a training pod in {namespace}: {self.describe()}")
        try:
            return client.run(
                context=context,
                extras=extras,
                namespace=namespace,
                base_pod_meta={"labels": manifests.pod_manifest(cfg)["metadata"]["labels"]},
                base_pod_spec=manifests.single_pod_spec(cfg),
                pod_wait_timeout=float(self.active_deadline_seconds),
            )
        except Failure:
            raise
        except Exception as exc:
            if client.pod_name is None:
                raise
            report = describe_pod(core, client.pod_name, namespace, self.log_tail_lines, t)
            raise Failure(
                description=f"training pod {namespace}/{client.pod_name} failed ({self.describe()}): {report}\n"
                f"(cause: {_short(exc)})",
                metadata={"pod": f"{namespace}/{client.pod_name}"},
            ) from exc
        finally:
            # After reading the failure reason; also on cancellation (Dagster interrupts the step).
            if client.pod_name is not None:
                _delete(lambda: core.delete_namespaced_pod(client.pod_name, namespace, _request_timeout=t))

    # -- several nodes: Indexed Job + headless Service, or PyTorchJob ------------------------------------

    def _launch_job(self, context, cfg: manifests.TrainingPodConfig, extras) -> PipesClientCompletedInvocation:
        import kubernetes
        from dagster_k8s.pipes import PipesK8sPodLogsMessageReader

        core = kubernetes.client.CoreV1Api()
        batch = kubernetes.client.BatchV1Api()
        custom = kubernetes.client.CustomObjectsApi()
        t = self.request_timeout_s
        ns = cfg.namespace
        reader = PipesK8sPodLogsMessageReader()
        with open_pipes_session(
            context=context, extras=extras, context_injector=PipesEnvContextInjector(), message_reader=reader
        ) as session:
            cfg = replace(cfg, env={**session.get_bootstrap_env_vars(), **cfg.env})
            cleanup: list = []
            try:
                if self.multinode == "pytorchjob":
                    body = manifests.pytorch_job_manifest(cfg)
                    custom.create_namespaced_custom_object(
                        "kubeflow.org", "v1", ns, "pytorchjobs", body, _request_timeout=t
                    )
                    cleanup.append(
                        lambda: custom.delete_namespaced_custom_object(
                            "kubeflow.org",
                            "v1",
                            ns,
                            "pytorchjobs",
                            cfg.name,
                            propagation_policy="Background",
                            _request_timeout=t,
                        )
                    )
                else:
                    service, job = manifests.indexed_job_manifests(cfg)
                    core.create_namespaced_service(ns, service, _request_timeout=t)
                    cleanup.append(lambda: core.delete_namespaced_service(cfg.service_name, ns, _request_timeout=t))
                    batch.create_namespaced_job(ns, job, _request_timeout=t)
                    cleanup.insert(
                        0,
                        lambda: batch.delete_namespaced_job(
                            cfg.name, ns, propagation_policy="Background", _request_timeout=t
                        ),
                    )
                context.log.info(f"created training {self.multinode} {ns}/{cfg.name}: {self.describe()}")
                watcher = JobWatcher(core, batch, custom, cfg, self, context.log)
                master = watcher.wait_for_master_running()
                logs = threading.Thread(
                    target=_consume_logs, args=(reader, context, core, master, ns), name="trainer-logs", daemon=True
                )
                logs.start()
                watcher.wait_for_completion()
                logs.join(timeout=60)  # the stream ends when the pod's container exits
            finally:
                # Runs on success, failure and cancellation (Dagster interrupts the step with an exception).
                for delete in cleanup:
                    _delete(delete)
        return PipesClientCompletedInvocation(session)


class BoundedPipesK8sClient(PipesK8sClient):
    """dagster-k8s's PipesK8sClient with every wait bounded and the pod left for the caller to inspect.

    The stock `run` waits up to a day for a pod that is not there (its wait loop treats "no such pod" as
    "not created yet"), so a pod deleted while the run streams its logs would hang the step. Here the pod
    must show up and start within `startup_timeout_s`, and once its log stream ends it must still be
    readable within a few polls; otherwise the wait fails and the launcher reports why.
    """

    def __init__(self, *, startup_timeout_s: float, request_timeout_s: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.startup_timeout_s = startup_timeout_s
        self.request_timeout_s = request_timeout_s
        self.pod_name: str | None = None

    def run(  # type: ignore[override]
        self,
        *,
        context,
        namespace: str,
        base_pod_meta: Mapping[str, Any],
        base_pod_spec: Mapping[str, Any],
        pod_wait_timeout: float,
        extras: Mapping[str, Any] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> PipesClientCompletedInvocation:
        from dagster_k8s.client import DagsterKubernetesClient, WaitForPodState
        from dagster_k8s.pipes import build_pod_body, get_pod_name

        self._load_k8s_config()
        client = DagsterKubernetesClient.production_client()
        with open_pipes_session(
            context=context, extras=extras, context_injector=self.context_injector, message_reader=self.message_reader
        ) as session:
            pod_name = get_pod_name(context.run_id, context.op.name)
            body = build_pod_body(
                pod_name=pod_name,
                image=None,
                command=None,
                env_vars={**session.get_bootstrap_env_vars(), **(self.env or {}), **(env or {})},
                base_pod_meta=base_pod_meta,
                base_pod_spec=base_pod_spec,
            )
            client.core_api.create_namespaced_pod(namespace, body, _request_timeout=self.request_timeout_s)
            self.pod_name = pod_name
            client.wait_for_pod(
                pod_name,
                namespace,
                wait_for_state=WaitForPodState.Ready,
                pod_launch_timeout=self.startup_timeout_s,
                wait_timeout=self.startup_timeout_s,
                wait_time_between_attempts=self.poll_interval,
            )
            self.message_reader.consume_pod_logs(
                context=context, core_api=client.core_api, pod_name=pod_name, namespace=namespace
            )
            client.wait_for_pod(
                pod_name,
                namespace,
                wait_for_state=WaitForPodState.Terminated,
                pod_launch_timeout=max(3 * self.poll_interval, 10.0),  # gone after its logs ended: deleted
                wait_timeout=pod_wait_timeout,
                wait_time_between_attempts=self.poll_interval,
            )
        return PipesClientCompletedInvocation(session)


def _consume_logs(reader, context, core, pod_name: str, namespace: str) -> None:
    try:
        reader.consume_pod_logs(context=context, core_api=core, pod_name=pod_name, namespace=namespace)
    except Exception as exc:  # the pod went away: the job watcher reports why
        context.log.warning(f"log stream of {namespace}/{pod_name} ended: {_short(exc)}")


class JobWatcher:
    """Polls a training job and its pods with deadlines; raises Failure with the reason when it fails."""

    BAD_WAITING = {
        "ImagePullBackOff",
        "ErrImagePull",
        "InvalidImageName",
        "CreateContainerConfigError",
        "CreateContainerError",
        "CrashLoopBackOff",
    }

    def __init__(
        self, core, batch, custom, cfg: manifests.TrainingPodConfig, launcher: K8sTrainingLauncher, log
    ) -> None:
        self.core, self.batch, self.custom = core, batch, custom
        self.cfg, self.launcher, self.log = cfg, launcher, log
        self.t = launcher.request_timeout_s

    def pods(self) -> list:
        selector = f"{manifests.JOB_LABEL}={self.cfg.name}"
        return list(
            self.core.list_namespaced_pod(self.cfg.namespace, label_selector=selector, _request_timeout=self.t).items
        )

    def _is_master(self, pod) -> bool:
        meta = pod.metadata
        index = (meta.annotations or {}).get("batch.kubernetes.io/job-completion-index")
        replica = (meta.labels or {}).get("training.kubeflow.org/replica-type", "")
        return index == "0" or replica.lower() == "master"

    def wait_for_master_running(self) -> str:
        deadline = time.monotonic() + self.launcher.startup_timeout_s
        while True:
            self.job_state()  # a job that already failed (e.g. deadline) ends the wait
            for pod in self.pods():
                self._raise_if_broken(pod)
                if self._is_master(pod) and pod.status and pod.status.phase in ("Running", "Succeeded", "Failed"):
                    return pod.metadata.name
            if time.monotonic() > deadline:
                pending = [describe_pod_object(p) for p in self.pods()] or ["no pod was created"]
                raise Failure(
                    f"training job {self.cfg.namespace}/{self.cfg.name} did not start within "
                    f"{self.launcher.startup_timeout_s:.0f}s: "
                    + "; ".join(pending)
                    + ". Check GPU capacity, node selectors and tolerations."
                )
            time.sleep(self.launcher.poll_interval_s)

    def _raise_if_broken(self, pod) -> None:
        for cs in (pod.status.container_statuses or []) if pod.status else []:
            waiting = cs.state.waiting if cs.state else None
            if waiting and waiting.reason in self.BAD_WAITING:
                raise Failure(self._failure_text(f"pod {pod.metadata.name} cannot start"))

    def job_state(self) -> str:
        """running | succeeded | failed (raises Failure when failed or deleted)."""
        import kubernetes

        try:
            if self.launcher.multinode == "pytorchjob":
                obj = self.custom.get_namespaced_custom_object(
                    "kubeflow.org", "v1", self.cfg.namespace, "pytorchjobs", self.cfg.name, _request_timeout=self.t
                )
                conditions = {
                    c["type"]: c for c in obj.get("status", {}).get("conditions", []) if c.get("status") == "True"
                }
                if "Succeeded" in conditions:
                    return "succeeded"
                if "Failed" in conditions:
                    raise Failure(self._failure_text(f"PyTorchJob failed: {conditions['Failed'].get('message', '')}"))
                return "running"
            job = self.batch.read_namespaced_job(self.cfg.name, self.cfg.namespace, _request_timeout=self.t)
        except kubernetes.client.ApiException as exc:
            if exc.status == 404:
                raise Failure(
                    f"training job {self.cfg.namespace}/{self.cfg.name} was deleted while running (by hand, or "
                    "by its TTL): re-run the step; it resumes from the last checkpoint when checkpoint_claim is set"
                ) from exc
            raise
        status = job.status
        for cond in status.conditions or []:
            if cond.status == "True" and cond.type == "Failed":
                raise Failure(self._failure_text(f"Job failed: {cond.reason}: {cond.message}"))
            if cond.status == "True" and cond.type == "Complete":
                return "succeeded"
        if (status.succeeded or 0) >= self.cfg.nodes:
            return "succeeded"
        if (status.failed or 0) > self.cfg.backoff_limit:
            raise Failure(self._failure_text(f"{status.failed} pod(s) failed"))
        return "running"

    def wait_for_completion(self) -> None:
        deadline = time.monotonic() + self.cfg.active_deadline_seconds + 120
        while self.job_state() != "succeeded":
            for pod in self.pods():
                self._raise_if_broken(pod)
                if pod.status and pod.status.phase == "Failed" and self.cfg.backoff_limit == 0:
                    raise Failure(self._failure_text(f"pod {pod.metadata.name} failed"))
            if time.monotonic() > deadline:
                raise Failure(self._failure_text("no result within activeDeadlineSeconds"))
            time.sleep(self.launcher.poll_interval_s)

    def _failure_text(self, headline: str) -> str:
        parts = [f"training job {self.cfg.namespace}/{self.cfg.name} failed: {headline}"]
        try:
            pods = self.pods()
        except Exception as exc:
            pods = []
            parts.append(f"(pods not readable: {_short(exc)})")
        for pod in pods:
            parts.append(
                describe_pod(
                    self.core, pod.metadata.name, self.cfg.namespace, self.launcher.log_tail_lines, self.t, pod
                )
            )
        return "\n".join(parts)


# ---- failure descriptions --------------------------------------------------------------------------

HINTS = {
    "OOMKilled": "the container ran out of memory: raise `memory` on the launcher or lower model.batch_size",
    "ImagePullBackOff": "the image cannot be pulled: check the image name/tag and imagePullSecrets",
    "ErrImagePull": "the image cannot be pulled: check the image name/tag and imagePullSecrets",
    "Unschedulable": "no node fits: check GPU capacity, node_selector and tolerations",
    "Evicted": "the node evicted the pod (memory/disk pressure or preemption): re-run",
    "DeadlineExceeded": "activeDeadlineSeconds passed: raise it or train fewer epochs",
}


def describe_pod_object(pod) -> str:
    """Phase, reasons and exit codes of one pod, in one line."""
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


def describe_pod(core, name: str, namespace: str, tail_lines: int, timeout: float, pod=None) -> str:
    """describe_pod_object + the container's last log lines (Pipes protocol lines left out)."""
    import kubernetes

    try:
        pod = pod or core.read_namespaced_pod(name, namespace, _request_timeout=timeout)
    except kubernetes.client.ApiException as exc:
        if exc.status == 404:
            return f"pod {name} no longer exists (deleted by hand, evicted or preempted); re-run the step"
        return f"pod {name} could not be read: {_short(exc)}"
    except Exception as exc:
        return f"pod {name} could not be read: {_short(exc)}"
    text = describe_pod_object(pod)
    try:
        raw = core.read_namespaced_pod_log(name, namespace, tail_lines=tail_lines * 3, _request_timeout=timeout)
        lines = [ln for ln in str(raw).splitlines() if PIPES_MARKER not in ln and ln.strip()][-tail_lines:]
        if lines:
            text += "\nlast log lines:\n" + "\n".join(lines)
    except Exception as exc:
        text += f"\n(logs not readable: {_short(exc)})"
    return text


def _delete(call) -> None:
    """Best effort: a cleanup error must not hide the step's own error (ttlSecondsAfterFinished is the backstop)."""
    import logging

    import kubernetes

    try:
        call()
    except kubernetes.client.ApiException as exc:
        if exc.status != 404:
            logging.getLogger("flywheel.training").warning("cleanup failed: %s", _short(exc))
    except Exception as exc:
        logging.getLogger("flywheel.training").warning("cleanup failed: %s", _short(exc))


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:500]
