"""Launcher settings: the profiles set them from the environment (FLYWHEEL_TRAINING_GPUS=0 means CPU pods) and
a bad value is one sentence naming the variable (pipelines.config.int_setting)."""

from __future__ import annotations

import pytest
from dagster import Failure

from pipelines.errors import FlywheelError
from resources.profiles import build_resources
from resources.training import K8sTrainingLauncher, LocalTrainingLauncher


def test_gpu_and_process_counts_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The profiles pass the variables as EnvVar; the launchers themselves read no environment."""
    monkeypatch.delenv("FLYWHEEL_TRAINING_GPUS", raising=False)
    monkeypatch.delenv("FLYWHEEL_TRAINING_NPROC", raising=False)
    monkeypatch.setenv("FLYWHEEL_STATE_DIR", "/nonexistent/flywheel-state")  # no stack.env to fall back on
    assert build_resources("k8s")["trainer"].gpus_per_node == 1  # unset: one GPU per pod
    assert build_resources("local")["trainer"].nproc_per_node == 1
    monkeypatch.setenv("FLYWHEEL_TRAINING_GPUS", "0")  # CPU workers, as TrainingPodConfig documents
    monkeypatch.setenv("FLYWHEEL_TRAINING_NPROC", "3")
    gpus, nproc = build_resources("k8s")["trainer"].gpus_per_node, build_resources("local")["trainer"].nproc_per_node
    assert gpus.env_var_name == "FLYWHEEL_TRAINING_GPUS" and nproc.env_var_name == "FLYWHEEL_TRAINING_NPROC"
    assert K8sTrainingLauncher(gpus_per_node=0).resolved_gpus() == 0
    assert LocalTrainingLauncher(nproc_per_node=3).resolved_nproc() == 3


@pytest.mark.parametrize(
    ("name", "value", "profile", "bound"),
    [
        ("FLYWHEEL_TRAINING_GPUS", "two", "k8s", ">= 0"),
        ("FLYWHEEL_TRAINING_GPUS", "-1", "k8s", ">= 0"),
        ("FLYWHEEL_TRAINING_NPROC", "many", "local", ">= 1"),
        ("FLYWHEEL_TRAINING_NPROC", "0", "local", ">= 1"),
    ],
)
def test_bad_counts_say_which_setting(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, profile: str, bound: str
) -> None:
    monkeypatch.setenv("FLYWHEEL_STATE_DIR", "/nonexistent/flywheel-state")
    monkeypatch.setenv(name, value)
    with pytest.raises(FlywheelError, match=rf"{name}='{value}' is not a whole number {bound}"):
        build_resources(profile)


def test_pod_config_carries_the_launcher_fields() -> None:
    launcher = K8sTrainingLauncher(
        image="registry.example.com/flywheel:1",
        namespace="ml",
        nodes=3,
        gpus_per_node=2,
        cpu="8",
        memory="32Gi",
        node_selector={"pool": "gpu"},
        tolerations=[{"key": "nvidia.com/gpu", "operator": "Exists"}],
        secrets=["s1"],
        image_pull_secrets=["pull"],
        backoff_limit=2,
        active_deadline_seconds=600,
        ttl_seconds_after_finished=60,
        checkpoint_claim="ckpt",
    )
    cfg = launcher.pod_config("job-1", ["--data", "lakefs://x/c/"], {"A": "1"}, "run-1")
    assert (cfg.name, cfg.image, cfg.namespace, cfg.nodes, cfg.gpus_per_node) == (
        "job-1",
        "registry.example.com/flywheel:1",
        "ml",
        3,
        2,
    )
    assert (cfg.cpu, cfg.memory, cfg.backoff_limit, cfg.active_deadline_seconds) == ("8", "32Gi", 2, 600)
    assert cfg.node_selector == {"pool": "gpu"} and cfg.tolerations[0]["key"] == "nvidia.com/gpu"
    assert list(cfg.secrets) == ["s1"] and list(cfg.image_pull_secrets) == ["pull"]
    assert cfg.ttl_seconds_after_finished == 60 and cfg.checkpoint_claim == "ckpt"
    assert cfg.env == {"A": "1"} and list(cfg.entry_args) == ["--data", "lakefs://x/c/"]


def test_no_image_is_one_sentence_for_the_step(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(FlywheelError, match="no training image configured"):
        K8sTrainingLauncher().pod_config("job", [], {}, "run")


def test_flywheel_errors_become_failures_with_pod_metadata() -> None:
    from pipelines.training.failure import TrainingFailed
    from resources.training import failures_for_dagster

    with pytest.raises(Failure) as caught, failures_for_dagster():
        raise TrainingFailed("training job ns/j failed: OOM", job="ns/j", pods=["j-0", "j-1"], log_tail="boom")
    failure = caught.value
    assert failure.description == "training job ns/j failed: OOM"
    assert failure.metadata["job"].value == "ns/j" and failure.metadata["pod"].value == "j-0, j-1"
    assert "boom" in failure.metadata["log_tail"].value
