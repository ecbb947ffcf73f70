"""Launcher settings from the environment: FLYWHEEL_TRAINING_GPUS=0 means CPU pods; bad values are one sentence."""

from __future__ import annotations

import pytest
from dagster import Failure

from resources.training import K8sTrainingLauncher, LocalTrainingLauncher


def test_gpu_and_process_counts_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLYWHEEL_TRAINING_GPUS", "0")  # CPU workers, as TrainingPodConfig documents
    assert K8sTrainingLauncher().resolved_gpus() == 0
    monkeypatch.setenv("FLYWHEEL_TRAINING_GPUS", "8")
    assert K8sTrainingLauncher().resolved_gpus() == 8 and K8sTrainingLauncher(gpus_per_node=2).resolved_gpus() == 2
    monkeypatch.setenv("FLYWHEEL_TRAINING_NPROC", "0")
    assert LocalTrainingLauncher().resolved_nproc() == 1
    monkeypatch.setenv("FLYWHEEL_TRAINING_NPROC", "3")
    assert LocalTrainingLauncher().resolved_nproc() == 3


@pytest.mark.parametrize(("name", "value"), [("FLYWHEEL_TRAINING_GPUS", "two"), ("FLYWHEEL_TRAINING_GPUS", "-1")])
def test_bad_counts_say_which_setting(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(Failure, match=rf"{name}='{value}' is not a whole number >= 0"):
        K8sTrainingLauncher().resolved_gpus()


def test_bad_process_count_says_which_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLYWHEEL_TRAINING_NPROC", "many")
    with pytest.raises(Failure, match=r"FLYWHEEL_TRAINING_NPROC='many' is not a whole number"):
        LocalTrainingLauncher().resolved_nproc()
