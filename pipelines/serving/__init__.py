"""Model serving: FastAPI app, models loaded by MLflow alias, micro-batching, rollouts and the prediction log.

app.py (routes) · models.py (loading a registered version, following the aliases, atomic swaps) · batcher.py
(dynamic micro-batching) · router.py (which version answers a record) · rollout.py (the rollout state machine
and its analysis, pure) · state.py (the rollout as a registered-model tag) · analysis.py (serving metrics into
analysis windows) · predlog.py (predictions to Kafka, off the request path) · schemas.py (request validation)
· security.py (the admin bearer token) · scoring.py (a micro-batch: online lookups, preprocessing, models).
"""
