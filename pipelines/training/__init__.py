"""Distributed PyTorch training of the spec's tabular model (plain Python; the entry point speaks Dagster Pipes).

Modules, each testable alone:
  data        read the model table at an exact lakeFS commit (or a local directory of parquet files)
  synthetic   a learnable synthetic model table for any spec (tests, benchmarks, trying it out)
  preprocess  vocabularies, normalization and null indicators fitted on the train split
  model       the tabular network (embeddings + MLP) built from the spec's `model` settings
  distributed torchrun process group (gloo on CPU, NCCL on GPU), attempt-scoped rendezvous store
  loop        the DDP training loop: global-batch sharding, early stopping, per-epoch checkpoints
  checkpoint  atomic per-epoch checkpoints, resume from the newest readable one
  reporting   Dagster Pipes on rank 0 (logs, per-epoch messages, materialization), plain logs otherwise
  metrics     AUC, PR-AUC, log loss, Brier, ECE; plots: loss curves, ROC, PR, calibration
  tracking    MLflow: params, per-epoch metrics, lineage tags (pipelines.lineage.keys), dataset input, model
  packaging   the MLflow pyfunc wrapper that embeds preprocessing; `load_model` for evaluation and serving
  entry       the torchrun entry point (`python -m torch.distributed.run ... -m pipelines.training.entry`)
  k8s         Kubernetes manifests (single GPU pod, Indexed Job + headless Service, Kubeflow PyTorchJob)
"""
