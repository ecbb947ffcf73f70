"""The online store's writers: the feature updater (the events topic -> the store, `flywheel features update`)
and the bootstrap (lakeFS raw history + offsets -> the store, `flywheel features bootstrap`).

The store itself, its layout and what serving imports live in `pipelines.features.online`, which must not
import ingestion (ingestion builds on `pipelines.features`); these writers read Kafka and lakeFS the way
ingestion does, so they sit above both.
"""
