"""Software-defined assets, one module per stage. Thin: wire resources to `pipelines`, attach metadata."""

ASSET_MODULES = [
    "assets.ingest",
    "assets.training",
    "assets.optimize",
    "assets.evaluate",
    "assets.deployment",
    "assets.monitoring",
    "assets.audit",
]
