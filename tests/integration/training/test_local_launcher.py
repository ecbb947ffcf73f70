"""The local launcher's failure report: exit code and the workers' last log lines in the Dagster error."""

from pathlib import Path

from dagster import AssetExecutionContext, MaterializeResult, asset, materialize

from resources.training import LocalTrainingLauncher, TrainingLauncher


@asset
def local_launch(context: AssetExecutionContext, trainer: TrainingLauncher) -> MaterializeResult:
    trainer.launch(context, ["--data", "/nonexistent/flywheel-dataset", "--no-mlflow"], {})
    return MaterializeResult()


def test_a_failing_worker_reports_its_error_and_exit_code() -> None:
    trainer = LocalTrainingLauncher(nproc_per_node=1, max_restarts=0, device="cpu")
    result = materialize([local_launch], resources={"trainer": trainer}, raise_on_error=False)
    assert not result.success
    text = result.get_step_failure_events()[0].step_failure_data.error.to_string()
    assert "failed with code 1" in text  # the exit code
    assert "no such local dataset directory" in text  # the worker's own error, from its log tail


def test_a_run_past_its_timeout_is_stopped_and_says_so(dataset_dir: Path) -> None:
    @asset
    def slow_launch(context: AssetExecutionContext, trainer: TrainingLauncher) -> MaterializeResult:
        trainer.launch(context, ["--data", str(dataset_dir), "--no-mlflow", "--epochs", "50", "--throttle-s", "5"], {})
        return MaterializeResult()

    trainer = LocalTrainingLauncher(nproc_per_node=1, max_restarts=0, device="cpu", timeout_s=8)
    result = materialize([slow_launch], resources={"trainer": trainer}, raise_on_error=False)
    assert not result.success
    text = result.get_step_failure_events()[0].step_failure_data.error.to_string()
    assert "ran past timeout_s=8s and was stopped" in text
