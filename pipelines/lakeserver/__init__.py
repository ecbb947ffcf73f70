"""An embedded, single-node server for the subset of the lakeFS v1 REST API that Flywheel uses.

Run it with `python -m pipelines.lakeserver --data-dir DIR`; talk to it with the official `lakefs` SDK.
Layers: `names` (validation), `blobs` (content-addressed files), `db` (SQLite schema), `trees`
(immutable ranges and metaranges), `store` (repositories, branches, commits, merge), `app` (HTTP).
"""
