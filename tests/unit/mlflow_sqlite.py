"""A constant model to register in the SQLite MLflow store of the `tracking` fixture (tests/unit/conftest.py),
for unit tests of the registry and the rollout control."""

from __future__ import annotations

import mlflow


class Constant(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input):
        return [0.5] * len(model_input)


def logged_model() -> str:
    """A freshly logged constant model's URI (in its own run)."""
    with mlflow.start_run():
        return mlflow.pyfunc.log_model(name="model", python_model=Constant()).model_uri
