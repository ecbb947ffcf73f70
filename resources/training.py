"""Training launchers: run `pipelines.training.entry` under torchrun, outside the Dagster process, via Pipes.

Key "trainer" in resources/profiles.py:
  local profile: LocalTrainingLauncher  PipesSubprocessClient running torchrun with `nproc_per_node` workers
  k8s profile:   K8sTrainingLauncher    one GPU pod through dagster-k8s's PipesK8sClient (nodes == 1), or an
                                        Indexed Job + headless Service / a Kubeflow PyTorchJob (nodes > 1)

Both return the Pipes session's results (the trainer's materialization metadata). Failures raise
`dagster.Failure` with what failed, where and what to do: exit code, pod reason (OOMKilled,
ImagePullBackOff, Unschedulable, Evicted...) and the last log lines. Every Kubernetes call has a timeout,
waits poll with deadlines, and the job, its pods and its Service are deleted when the step ends for any
reason, cancellation included (TTL is the backstop). Only the Dagster edge is here (Pipes sessions, launch
orchestration, the Pipes client wrapper); the rest is in pipelines/training/ (k8s.py manifests,
k8s_watch.py job watcher and pod reports, torchrun.py command and log tails) and raises FlywheelError,
which the launchers turn into a Failure.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import fields, replace
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

from pipelines.config import project_root
from pipelines.errors import FlywheelError
from pipelines.training import k8s as manifests
from pipelines.training import torchrun
from pipelines.training.failure import TrainingFailed
from pipelines.training.k8s_watch import (
    BoundedApi,
    JobWatcher,
    WatchSettings,
    delete_quietly,
    load_kube_config,
    pod_failure,
    short_error,
)


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


@contextmanager
def failures_for_dagster() -> Iterator[None]:
    """FlywheelError (pipelines/) -> dagster.Failure, with where it ran and the log tail as metadata."""
    try:
        yield
    except FlywheelError as exc:
        details = exc.details() if isinstance(exc, TrainingFailed) else {}
        metadata = {k: MetadataValue.text(v) for k, v in details.items()}
        if "log_tail" in details:
            metadata["log_tail"] = MetadataValue.md(f"```\n{details['log_tail']}\n```")
        raise Failure(description=str(exc), metadata=metadata) from exc


def _count(name: str, value: int, minimum: int) -> int:
    if value < minimum:
        raise Failure(f"{name}={value} must be a whole number >= {minimum}")
    return value


# ---- local: torchrun as a subprocess ----------------------------------------------------------------


class LocalTrainingLauncher(TrainingLauncher):
    """torchrun on this machine: `nproc_per_node` DDP workers (gloo on CPU, NCCL on GPUs)."""

    # No `ge` bound on the counts: pydantic would check the EnvVar.int placeholder, not the value; the profile
    # checks the variable (pipelines.config.int_setting) and `resolved_*` the value.
    nproc_per_node: int = Field(
        default=1, description="worker processes (GPUs on a GPU machine); profiles: FLYWHEEL_TRAINING_NPROC"
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
        return _count("nproc_per_node", self.nproc_per_node, minimum=1)

    def command(self, entry_args: Sequence[str], log_dir: str) -> list[str]:
        return torchrun.local_command(
            python=self.python or sys.executable,
            nproc=self.resolved_nproc(),
            max_restarts=self.max_restarts,
            log_dir=log_dir,
            device=self.device,
            entry_args=[*entry_args, *self.extra_args],
            timeout_s=self.timeout_s,
        )

    def describe(self) -> str:
        with failures_for_dagster():
            return f"local torchrun, {self.resolved_nproc()} process(es), device {self.device}"

    def launch(self, context, entry_args, env, extras=None) -> PipesClientCompletedInvocation:
        log_dir = tempfile.mkdtemp(prefix="flywheel-torchrun-")
        with failures_for_dagster():
            command = self.command(entry_args, log_dir)
        context.log.info("launching " + " ".join(command))
        client = PipesSubprocessClient(cwd=str(project_root()))
        try:
            invocation = client.run(context=context, command=command, env=dict(env), extras=extras)
            shutil.rmtree(log_dir, ignore_errors=True)  # kept only when something failed
            return invocation
        except DagsterPipesExecutionError as exc:
            where, lines = self.describe(), self.log_tail_lines
            with failures_for_dagster():
                raise torchrun.local_failure(
                    str(exc), where=where, log_dir=log_dir, tail_lines=lines, timeout_s=self.timeout_s
                ) from exc


# ---- Kubernetes ------------------------------------------------------------------------------------


# Launcher fields that TrainingPodConfig takes as they are.
PASS_THROUGH = (
    *("nodes", "max_restarts", "cpu", "memory", "shm_size", "node_selector", "tolerations", "service_account"),
    *("config_maps", "secrets", "image_pull_secrets", "ttl_seconds_after_finished", "backoff_limit"),
    "active_deadline_seconds",
)


class K8sTrainingLauncher(TrainingLauncher):
    """Training on Kubernetes GPU nodes: a pod (one node) or an Indexed Job / PyTorchJob (several nodes).

    resources/profiles.py sets `image`, `namespace` and `gpus_per_node` from FLYWHEEL_TRAINING_IMAGE,
    FLYWHEEL_K8S_NAMESPACE and FLYWHEEL_TRAINING_GPUS (deploy/k8s/base/config.yaml).
    """

    image: str = Field(default="", description="training image (required to launch)")
    namespace: str = Field(default="flywheel", description="namespace of the training pods")
    nodes: int = Field(default=1, ge=1, description="nodes; 1 = a single pod")
    gpus_per_node: int = Field(default=1, description="nvidia.com/gpu per pod; 0 = CPU pods")
    multinode: Literal["indexed_job", "pytorchjob"] = Field(default="indexed_job", description="when nodes > 1")
    max_restarts: int = Field(default=1, ge=0)
    cpu: str = "4"
    memory: str = "16Gi"
    shm_size: str = "8Gi"
    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[dict[str, Any]] = Field(default_factory=list)
    service_account: str = "flywheel-trainer"
    config_maps: list[str] = Field(default_factory=lambda: ["flywheel-env"])
    secrets: list[str] = Field(default_factory=lambda: ["flywheel-lakefs", "flywheel-mlflow"])
    image_pull_secrets: list[str] = Field(default_factory=list)
    checkpoint_claim: str = Field(default="", description="PVC for checkpoints (survive a rescheduled pod)")
    network_policy: bool = Field(default=True, description="a NetworkPolicy per multi-node job (own pods only)")
    ttl_seconds_after_finished: int = 3600
    backoff_limit: int = 0
    active_deadline_seconds: int = 24 * 3600
    startup_timeout_s: float = Field(default=900, description="longest wait for the pod(s) to start running")
    poll_interval_s: float = Field(default=5.0, gt=0)
    request_timeout_s: float = Field(default=30.0, gt=0, description="timeout of every Kubernetes API call")
    log_read_timeout_s: float = Field(default=300.0, gt=0, description="silence on the log stream before a reconnect")
    load_incluster_config: bool | None = None
    kubeconfig_file: str | None = None
    kube_context: str | None = None
    log_tail_lines: int = 30

    def resolved_gpus(self) -> int:
        return _count("gpus_per_node", self.gpus_per_node, minimum=0)

    def resolved_namespace(self) -> str:
        return self.namespace or "flywheel"

    def describe(self) -> str:
        shape = "pod" if self.nodes == 1 else self.multinode
        with failures_for_dagster():
            gpus = self.resolved_gpus()
        return f"Kubernetes {shape}, {self.nodes} node(s) x {gpus} GPU(s) in {self.resolved_namespace()}"

    def pod_config(
        self, name: str, entry_args: Sequence[str], env: Mapping[str, str], run_id: str
    ) -> manifests.TrainingPodConfig:
        image = self.image.strip()
        if not image:
            raise FlywheelError(
                "no training image configured: set K8sTrainingLauncher.image or FLYWHEEL_TRAINING_IMAGE"
            )
        same = {f.name: getattr(self, f.name) for f in fields(manifests.TrainingPodConfig) if f.name in PASS_THROUGH}
        return manifests.TrainingPodConfig(
            **same,
            name=name,
            image=image,
            entry_args=list(entry_args),
            namespace=self.resolved_namespace(),
            gpus_per_node=self.resolved_gpus(),
            env=manifests.pod_env(env)[0],  # credentials come from the `secrets`, never literal env
            checkpoint_claim=self.checkpoint_claim or None,
            labels={manifests.RUN_ID_LABEL: run_id},
        )

    def launch(self, context, entry_args, env, extras=None) -> PipesClientCompletedInvocation:
        name = manifests.dns_label(f"flywheel-train-{context.run_id[:8]}-{context.retry_number}")
        with failures_for_dagster():
            cfg = self.pod_config(name, entry_args, env, context.run_id)
            if withheld := manifests.pod_env(env)[1]:
                context.log.info(f"kept out of the pod spec (pods read credentials from {cfg.secrets}): {withheld}")
            load_kube_config(self.load_incluster_config, self.kubeconfig_file, self.kube_context)
            if self.nodes == 1:
                return self._launch_pod(context, cfg, extras)
            return self._launch_job(context, cfg, extras)

    def _bounded(self, api: Any) -> BoundedApi:
        return BoundedApi(api, self.request_timeout_s, self.log_read_timeout_s)

    def watch_settings(self) -> WatchSettings:
        names = ("startup_timeout_s", "poll_interval_s", "request_timeout_s", "log_tail_lines")
        return WatchSettings(kind=self.multinode, **{n: getattr(self, n) for n in names})

    # -- one node: dagster-k8s's PipesK8sClient ---------------------------------------------------------

    def _launch_pod(self, context, cfg: manifests.TrainingPodConfig, extras) -> PipesClientCompletedInvocation:
        import kubernetes

        client = BoundedPipesK8sClient(
            load_incluster_config=self.load_incluster_config,
            kubeconfig_file=self.kubeconfig_file,
            kube_context=self.kube_context,
            poll_interval=self.poll_interval_s,
            startup_timeout_s=self.startup_timeout_s,
            timeouts=(self.request_timeout_s, self.log_read_timeout_s),
        )
        namespace = cfg.namespace
        core = self._bounded(kubernetes.client.CoreV1Api())
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
            what = self.describe()
            raise pod_failure(core, client.pod_name, namespace, what, exc, self.log_tail_lines, t) from exc
        finally:
            # After reading the failure reason; also on cancellation (Dagster interrupts the step).
            if client.pod_name is not None:
                delete_quietly(lambda: core.delete_namespaced_pod(client.pod_name, namespace, _request_timeout=t))

    # -- several nodes: Indexed Job + headless Service, or PyTorchJob ------------------------------------

    def _launch_job(self, context, cfg: manifests.TrainingPodConfig, extras) -> PipesClientCompletedInvocation:
        import kubernetes
        from dagster_k8s.pipes import PipesK8sPodLogsMessageReader

        core = self._bounded(kubernetes.client.CoreV1Api())
        batch = self._bounded(kubernetes.client.BatchV1Api())
        custom = self._bounded(kubernetes.client.CustomObjectsApi())
        networking = self._bounded(kubernetes.client.NetworkingV1Api()) if self.network_policy else None
        reader = PipesK8sPodLogsMessageReader()
        with open_pipes_session(
            context=context, extras=extras, context_injector=PipesEnvContextInjector(), message_reader=reader
        ) as session:
            cfg = replace(cfg, env={**session.get_bootstrap_env_vars(), **cfg.env})
            watcher = JobWatcher(core, batch, custom, cfg, self.watch_settings())
            cleanup: list = []
            try:
                watcher.create(cleanup, networking)
                context.log.info(f"created training {self.multinode} {cfg.namespace}/{cfg.name}: {self.describe()}")
                master = watcher.wait_for_master_running()
                logs = threading.Thread(
                    target=_consume_logs,
                    args=(reader, context, core, master, cfg.namespace),
                    name="trainer-logs",
                    daemon=True,
                )
                logs.start()
                watcher.wait_for_completion()
                logs.join(timeout=60)  # the stream ends when the pod's container exits
            finally:
                # Runs on success, failure and cancellation (Dagster interrupts the step with an exception).
                for delete in cleanup:
                    delete_quietly(delete)
        return PipesClientCompletedInvocation(session)


class BoundedPipesK8sClient(PipesK8sClient):
    """dagster-k8s's PipesK8sClient with every wait and API call bounded, the pod left for the caller to inspect.

    The stock `run` waits up to a day for a pod that is not there (its wait loop treats "no such pod" as
    "not created yet") and polls without request timeouts, so a deleted pod or a stalled API server hangs
    the step. Here the pod must start within `startup_timeout_s`, be readable within a few polls after its
    log stream ends, and every call has a timeout (BoundedApi); otherwise the launcher reports why.
    """

    def __init__(self, *, startup_timeout_s: float, timeouts: tuple[float, float], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.startup_timeout_s = startup_timeout_s
        self.timeouts = timeouts  # (each API call, silence on the log stream): see BoundedApi
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
        from dagster_k8s.client import DagsterKubernetesClient, PatchedApiClient, WaitForPodState
        from dagster_k8s.pipes import build_pod_body, get_pod_name
        from kubernetes.client import BatchV1Api, CoreV1Api

        self._load_k8s_config()
        client = DagsterKubernetesClient.production_client(  # its pod wait passes no timeout: BoundedApi adds one
            core_api_override=BoundedApi(CoreV1Api(api_client=PatchedApiClient()), *self.timeouts),
            batch_api_override=BoundedApi(BatchV1Api(api_client=PatchedApiClient()), *self.timeouts),
        )
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
            client.core_api.create_namespaced_pod(namespace, body)
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
        context.log.warning(f"log stream of {namespace}/{pod_name} ended: {short_error(exc)}")
