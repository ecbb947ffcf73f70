"""Where did this model come from? The whole chain of one registered version, read from the systems themselves.

MLflow holds the version (tags: gate decision, optimization candidates, the lakeFS commit, the training and
optimization runs), the training run (parameters, metrics, code SHA) and the gate report run; lakeFS holds
the dataset commit and, walking its history, every published batch with its Kafka offset ranges, validation
result and Data Docs; Dagster holds the runs that did the work (read over its GraphQL API, so a deployed
Dagster answers the same way as `dagster dev`), with what triggered each one. Nothing comes from a side file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelines import registry
from pipelines.errors import FlywheelError
from pipelines.lineage import keys

# Version tags the rollout writes (pipelines/serving/state.py: flywheel.rollout.decision promoted | rolled_back,
# flywheel.rollout.reason with what decided it); the rollout's steps live in the registered model's
# `flywheel.rollout` tag (ROLLOUT_STATE_TAG) while it is this version's, and in the Deployment records.
ROLLOUT_TAG_PREFIXES = ("flywheel.rollout.", "flywheel.deployment.", "flywheel.canary.")
ROLLOUT_STATE_TAG = "flywheel.rollout"
TRIGGER_TAGS = ("dagster/sensor_name", "dagster/schedule_name", "flywheel.trigger", "dagster/backfill")
MAX_BATCHES = 1000  # dataset commits walked back from the training commit


@dataclass
class Sources:
    """The systems to read: lakeFS (a pipelines.lake.Lake), MLflow (an MlflowClient), and the Dagster
    webserver and serving URLs when reachable (their parts of the chain say 'unreachable' otherwise)."""

    lake: Any
    mlflow: Any
    dagster_url: str | None = None
    serving_url: str | None = None
    timeout_s: float = 10.0
    records_dir: Path | None = None  # the IO manager's <base>/flywheel-records: Deployment records per run


def _json(value: str | None) -> Any:
    if not value:
        return None
    try:
        return json.loads(value)
    except ValueError:
        return value


def _version(sources: Sources, name: str, version: str) -> Any:
    try:
        return sources.mlflow.get_model_version(name, version)
    except Exception as exc:
        raise FlywheelError(
            f"model {name!r} version {version!r} is not in the MLflow registry at "
            f"{sources.mlflow.tracking_uri}: {str(exc)[:200]} (list them: flywheel lineage --model {name})"
        ) from exc


def _run(sources: Sources, run_id: str | None) -> dict[str, Any] | None:
    if not run_id:
        return None
    try:
        run = sources.mlflow.get_run(run_id)
    except Exception as exc:
        return {"run_id": run_id, "error": f"not readable in MLflow: {str(exc)[:200]}"}
    return {
        "run_id": run_id,
        "name": run.info.run_name,
        "experiment_id": run.info.experiment_id,
        "status": run.info.status,
        "start_time_ms": run.info.start_time,
        "params": dict(run.data.params),
        "metrics": {k: round(v, 6) for k, v in run.data.metrics.items()},
        "code_version": run.data.tags.get(keys.CODE_VERSION),
        "spec": run.data.tags.get(keys.SPEC),
        "spec_hash": run.data.tags.get(keys.SPEC_HASH),
        "dagster_run_id": run.data.tags.get(keys.RUN_ID),
        "link": f"{sources.mlflow.tracking_uri.rstrip('/')}/#/experiments/{run.info.experiment_id}/runs/{run_id}",
    }


def dataset_batches(lake: Any, commit: str, spec_name: str) -> list[dict[str, Any]]:
    """Every published dataset batch of the spec reachable from `commit`, oldest first: what a model
    trained at that commit read (Kafka offset ranges per partition, validation, Data Docs, the run)."""
    from pipelines.lake import commit_log

    batches = []
    for c in commit_log(lake, commit, max_amount=MAX_BATCHES):
        meta = c.metadata or {}
        if meta.get(keys.SPEC) != spec_name or meta.get(keys.STAGE) != "published":
            continue
        batches.append(
            {
                "commit": c.id,
                "created": c.creation_date,
                "version": meta.get(keys.DATASET_VERSION),
                "tag": meta.get(keys.DATASET_TAG),
                "topic": meta.get(keys.TOPIC),
                "offset_ranges": _json(meta.get(keys.OFFSET_RANGES)),
                "events": meta.get(keys.EVENTS),
                "quarantined": meta.get(keys.QUARANTINED),
                "validation": meta.get(keys.VALIDATION),
                "validation_summary": _json(meta.get(keys.VALIDATION_SUMMARY)),
                "data_docs": meta.get(keys.DATA_DOCS) or None,
                "spec_hash": meta.get(keys.SPEC_HASH),
                "dagster_run_id": meta.get(keys.RUN_ID),
            }
        )
    return list(reversed(batches))


def dagster_runs(sources: Sources, run_ids: list[str]) -> dict[str, dict[str, Any]]:
    """{run id: job, status, times, trigger, link} from the Dagster webserver's GraphQL API."""
    ids = sorted({r for r in run_ids if r})
    if not ids or not sources.dagster_url:
        return {r: {"run_id": r, "status": "unknown (no Dagster webserver configured)"} for r in ids}
    import httpx

    query = (
        "query Runs($ids: [String!]) { runsOrError(filter: {runIds: $ids}) { __typename "
        "... on Runs { results { runId jobName status startTime endTime tags { key value } } } "
        "... on PythonError { message } } }"
    )
    base = sources.dagster_url.rstrip("/")
    try:
        response = httpx.post(
            f"{base}/graphql", json={"query": query, "variables": {"ids": ids}}, timeout=sources.timeout_s
        )
        response.raise_for_status()
        body = response.json()["data"]["runsOrError"]
    except Exception as exc:
        note = f"unreachable ({str(exc)[:120]}): start the UI with `make dev` or set FLYWHEEL_DAGSTER_URL"
        return {r: {"run_id": r, "status": note, "link": f"{base}/runs/{r}"} for r in ids}
    found = {}
    for run in body.get("results", []):
        tags = {t["key"]: t["value"] for t in run["tags"]}
        found[run["runId"]] = {
            "run_id": run["runId"],
            "job": run["jobName"],
            "status": run["status"],
            "start_time": run.get("startTime"),
            "end_time": run.get("endTime"),
            "trigger": trigger_of(tags),
            "tags": {k: v for k, v in tags.items() if k.startswith(("flywheel.", "dagster/"))},
            "link": f"{base}/runs/{run['runId']}",
        }
    for r in ids:
        found.setdefault(r, {"run_id": r, "status": "not in this Dagster instance", "link": f"{base}/runs/{r}"})
    return found


def trigger_of(tags: dict[str, str]) -> str:
    """What started a run: the sensor (with the drift report it names), the schedule, or a person."""
    if "dagster/sensor_name" in tags:
        report = tags.get("flywheel.drift_report")
        return f"sensor {tags['dagster/sensor_name']}" + (f" (report {report})" if report else "")
    if "dagster/schedule_name" in tags:
        return f"schedule {tags['dagster/schedule_name']}"
    if "dagster/backfill" in tags:
        return f"backfill {tags['dagster/backfill']}"
    return tags.get("flywheel.trigger", "manual")


def serving_state(sources: Sources, name: str, version: str, aliases: list[str]) -> dict[str, Any]:
    """What serves now: the aliases (the registry's word) and, when serving answers, its own /v1/models."""
    state: dict[str, Any] = {"aliases": aliases, "serving": None}
    if not sources.serving_url:
        return state
    import httpx

    try:
        response = httpx.get(f"{sources.serving_url.rstrip('/')}/v1/models", timeout=sources.timeout_s)
        response.raise_for_status()
        state["serving"] = response.json()
    except Exception as exc:
        state["serving"] = {"error": f"serving at {sources.serving_url} unreachable: {str(exc)[:120]}"}
    return state


def trace(sources: Sources, name: str, version: str) -> dict[str, Any]:
    """The whole chain of one model version (see the module docstring), as a JSON-ready dict."""
    mv = _version(sources, name, version)
    tags = dict(mv.tags)
    aliases = aliases_by_version(sources, name).get(str(version), [])
    optimize_run_id = tags.get(keys.MLFLOW_RUN_ID)
    training = _run(sources, tags.get(keys.TRAINING_RUN_ID))
    optimize = _run(sources, optimize_run_id)
    gate_run = _run(sources, tags.get("flywheel.gate.report_run_id"))
    commit = tags.get(keys.LAKEFS_COMMIT)
    spec_name = (training or {}).get("spec") or tags.get(keys.SPEC) or _spec_of(sources, commit)
    batches = dataset_batches(sources.lake, commit, spec_name) if commit and spec_name else []
    run_ids = [
        *(b["dagster_run_id"] for b in batches),
        tags.get(keys.RUN_ID),
        (training or {}).get("dagster_run_id"),
        (optimize or {}).get("dagster_run_id"),
        (gate_run or {}).get("dagster_run_id"),
    ]
    rollout = {k: _json(v) for k, v in sorted(tags.items()) if k.startswith(ROLLOUT_TAG_PREFIXES)}
    state = rollout_state(sources, name, version)
    if state is not None:
        rollout[ROLLOUT_STATE_TAG] = state
    deployments = deployment_records(sources.records_dir, name, version)
    run_ids += [d["dagster_run_id"] for d in deployments]
    return {
        "model": {"name": name, "version": version, "source": mv.source, "created_ms": mv.creation_timestamp},
        "dataset": {
            "repository": tags.get(keys.LAKEFS_REPOSITORY),
            "commit": commit,
            "spec": spec_name,
            "spec_hash": tags.get(keys.SPEC_HASH),
            "batches": batches,
        },
        "training": training,
        "optimization": {
            "run": optimize,
            "chosen": tags.get("flywheel.form"),
            "reason": tags.get("flywheel.optimize.reason"),
            "candidates": _json(tags.get("flywheel.optimize.candidates")),
        },
        "gate": {
            "decision": tags.get(registry.DECISION_TAG),
            "reason": tags.get(registry.REASON_TAG),
            "champion_version": tags.get("flywheel.gate.champion_version") or None,
            "report_run": gate_run,
        },
        "rollout": rollout,
        "deployments": deployments,
        "dagster_runs": dagster_runs(sources, [r for r in run_ids if r]),
        "now": serving_state(sources, name, version, aliases),
    }


def rollout_state(sources: Sources, name: str, version: str) -> dict[str, Any] | None:
    """The registered model's rollout tag (strategy, steps, the step reached, state, reason) when the rollout
    it describes is this version's; the tag holds only the latest rollout of the model."""
    try:
        tags = dict(sources.mlflow.get_registered_model(name).tags or {})
    except Exception:
        return None
    state = _json(tags.get(ROLLOUT_STATE_TAG))
    if isinstance(state, dict) and str(state.get("challenger")) == str(version):
        return state
    return None


def deployment_records(records_dir: Path | None, name: str, version: str) -> list[dict[str, Any]]:
    """The `deployment` asset's records of this version (one per run: <records>/runs/<run id>/deployment.json),
    oldest first; none when the records directory is not known or not local."""
    if records_dir is None or not Path(records_dir).is_dir():
        return []
    from pipelines.lineage.records import Deployment, RecordError, record_from_json

    found = []
    for path in Path(records_dir).glob("runs/*/deployment.json"):
        try:
            record = record_from_json(path.read_text(), where=str(path))
        except (OSError, RecordError):
            continue
        if isinstance(record, Deployment) and record.model_name == name and str(record.version) == str(version):
            found.append({**record.to_dict(), "dagster_run_id": path.parent.name})
    return sorted(found, key=lambda d: d.get("started_at") or 0)


def _spec_of(sources: Sources, commit: str | None) -> str | None:
    if not commit:
        return None
    meta = sources.lake.commit_info(commit).metadata or {}
    return meta.get(keys.SPEC)


def aliases_by_version(sources: Sources, name: str) -> dict[str, list[str]]:
    """{version: its aliases}, from the registered model: MLflow's version search leaves aliases empty."""
    try:
        aliases = sources.mlflow.get_registered_model(name).aliases or {}
    except Exception as exc:
        raise FlywheelError(f"reading the aliases of {name!r} in MLflow failed: {str(exc)[:200]}") from exc
    out: dict[str, list[str]] = {}
    for alias, version in sorted(aliases.items()):
        out.setdefault(str(version), []).append(alias)
    return out


def versions(sources: Sources, name: str) -> list[dict[str, Any]]:
    """Every version of the model with its gate decision and serving state, newest first."""
    try:
        found = sources.mlflow.search_model_versions(f"name = '{name}'")
    except Exception as exc:
        raise FlywheelError(f"listing versions of {name!r} in MLflow failed: {str(exc)[:200]}") from exc
    by_version = aliases_by_version(sources, name)
    rows = []
    for mv in sorted(found, key=lambda v: int(v.version), reverse=True):
        aliases = by_version.get(str(mv.version), [])
        rows.append(
            {
                "version": str(mv.version),
                "created_ms": mv.creation_timestamp,
                "decision": mv.tags.get(registry.DECISION_TAG),
                "reason": (mv.tags.get(registry.REASON_TAG) or "")[:200],
                "aliases": aliases,
                "serving": registry.CHAMPION in aliases or registry.CHALLENGER in aliases,
                "lakefs_commit": mv.tags.get(keys.LAKEFS_COMMIT),
            }
        )
    return rows
