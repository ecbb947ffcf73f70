"""Distributed PyTorch training of the spec's tabular model (plain Python; the entry point speaks Dagster Pipes).

Modules, each testable alone:
  data        read the model table at an exact lakeFS commit (or a local directory of parquet files)
  preprocess  vocabularies, normalization and null indicators fitted on the train split
  model       the tabular network (embeddings + MLP) built from the spec's `model` settings
  loop        the DDP training loop: global-batch sharding, early stopping, per-epoch checkpoints
  metrics     AUC, PR-AUC, log loss, Brier, ECE; plots: loss curves, ROC, PR, calibration
  tracking    MLflow: params, per-epoch metrics, lineage tags, dataset input, registered pyfunc model
  serving     the pyfunc wrapper that embeds preprocessing; `load_model` for evaluation and serving
  entry       the torchrun entry point (`python -m torch.distributed.run ... -m pipelines.training.entry`)
  k8s         Kubernetes manifests (single GPU pod, Indexed Job + headless Service, Kubeflow PyTorchJob)
"""

from pipelines.training.record import TrainedModel

__all__ = ["TrainedModel"]
