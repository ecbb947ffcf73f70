"""The online half of the features: the spec's aggregates for one raw event at request time.

`api.OnlineFeatures` is what serving asks; the Redis/Valkey store, its updater and bootstrap implement it
with the semantics of `pipelines.features.aggregates`, as the offline Spark table does.
"""
