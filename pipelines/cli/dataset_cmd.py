"""`flywheel dataset`: the published dataset versions in lakeFS.

flywheel dataset show [--ref REF] [--format json]     # the version at a ref (default main), from commit metadata
flywheel dataset branches [--prune]                   # leftover ingest-* branches (crashed or failed runs)
flywheel dataset reset-offsets --to earliest|latest   # after a broker reset or accepted data loss
flywheel dataset rebuild [--spec SPEC]                # the whole model table from raw history, through the gate
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from pipelines.errors import FlywheelError
from pipelines.lineage import keys
from pipelines.lineage.uris import lake_uri


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("dataset", help="show published dataset versions (lakeFS commits)")
    parser.set_defaults(func=lambda args: parser.print_help() or 2)
    cmds = parser.add_subparsers(dest="dataset_command", metavar="SUBCOMMAND")

    show = cmds.add_parser("show", help="the dataset version at a ref: commit, tag, rows, offsets, validation")
    show.add_argument("--ref", default="main", help="branch, tag or commit id (default: main)")
    show.add_argument("--spec", default=None, help="spec path or built-in name (default: FLYWHEEL_SPEC)")
    show.add_argument("--format", choices=("text", "json"), default="text")
    show.set_defaults(func=_show)

    branches = cmds.add_parser("branches", help="ingest-* branches left by crashed or failed runs")
    branches.add_argument("--prune", action="store_true", help="delete them (main is never touched)")
    branches.add_argument("--format", choices=("text", "json"), default="text")
    branches.set_defaults(func=_branches)

    reset = cmds.add_parser("reset-offsets", help="move main's Kafka offsets (commits to main)")
    reset.add_argument("--to", choices=("earliest", "latest"), required=True)
    reset.add_argument("--spec", default=None)
    reset.add_argument("--yes", action="store_true", help="confirm: events may be skipped or read again")
    reset.set_defaults(func=_reset_offsets)

    rebuild = cmds.add_parser(
        "rebuild",
        help="rebuild the whole model table from raw history (after a change of the spec's features), "
        "published through the same gate",
    )
    rebuild.add_argument("--spec", default=None, help="spec path or built-in name (default: FLYWHEEL_SPEC)")
    rebuild.add_argument("--run-id", default=None, help="names the branch ingest-<run id> (default: generated)")
    rebuild.add_argument("--format", choices=("text", "json"), default="text")
    rebuild.set_defaults(func=_rebuild)


def _loads(value: str | None) -> Any:
    if not value:
        return None
    try:
        return json.loads(value)
    except ValueError:
        return value


def dataset_at(lake: Any, ref: str, spec_name: str) -> dict[str, Any]:
    """The dataset version published at ref: the newest dataset commit of the spec reachable from it."""
    from pipelines.lake import commit_log

    for commit in commit_log(lake, ref, max_amount=200):
        meta = commit.metadata or {}
        if meta.get(keys.SPEC) == spec_name and meta.get(keys.STAGE) == "published":
            return {
                "ref": ref,
                "commit": commit.id,
                "uri": lake_uri(
                    lake.repository_id, commit.id, meta.get(keys.FEATURES_PATH) or f"features/{spec_name}/"
                ),
                "created": commit.creation_date,
                "message": commit.message,
                "spec": spec_name,
                "spec_hash": meta.get(keys.SPEC_HASH),
                "tag": meta.get(keys.DATASET_TAG),
                "version": int(meta.get(keys.DATASET_VERSION, 0)),
                "run_id": meta.get(keys.RUN_ID),
                "rows": int(meta.get(keys.ROWS, 0)),
                "batch": meta.get(keys.BATCH) or None,
                "new_rows": int(meta.get(keys.NEW_ROWS, 0)),
                "duplicates_dropped": _loads(meta.get(keys.DUPLICATES)),
                "feature_hash": meta.get(keys.FEATURE_HASH) or None,
                "new_events": int(meta.get(keys.EVENTS, 0)),
                "valid": int(meta.get(keys.VALID, 0)),
                "quarantined": int(meta.get(keys.QUARANTINED, 0)),
                "splits": _loads(meta.get(keys.SPLITS)),
                "offsets": _loads(meta.get(keys.OFFSETS)),
                "offset_ranges": _loads(meta.get(keys.OFFSET_RANGES)),
                "topic_id": meta.get(keys.TOPIC_ID) or None,
                "topic_reset": _loads(meta.get(keys.TOPIC_RESET)),
                "validation": _loads(meta.get(keys.VALIDATION_SUMMARY)),
                "data_docs": meta.get(keys.DATA_DOCS) or None,
                "is_head": commit.id == lake.resolve(ref),
            }
    raise FlywheelError(
        f"no published dataset of spec {spec_name!r} at {ref!r} (looked at its last 200 commits): run ingest_job"
    )


def _show(args: argparse.Namespace) -> int:
    from pipelines.lake import Lake
    from pipelines.spec import load_spec

    spec = load_spec(args.spec)
    info = dataset_at(Lake.from_env(), args.ref, spec.name)
    if args.format == "json":
        print(json.dumps(info, indent=2, sort_keys=True))
        return 0
    validation = info["validation"] or {}
    lines = [
        f"dataset   {info['spec']} v{info['version']}  (tag {info['tag']})",
        f"ref       {info['ref']} -> commit {info['commit']}",
        f"uri       {info['uri']}",
        f"rows      {info['rows']}  splits {info['splits']}",
        f"batch     {info['batch']}: {info['new_rows']} new rows, duplicates dropped {info['duplicates_dropped']}",
        f"ingested  {info['new_events']} events in this version: {info['valid']} valid, "
        f"{info['quarantined']} quarantined",
        f"offsets   {info['offsets']}  (this version read {info['offset_ranges']})",
        f"validated {'passed' if validation.get('success') else 'FAILED'}: "
        f"{validation.get('expectations')} expectations, checks {validation.get('checks')}",
        f"run       {info['run_id']}  spec hash {info['spec_hash']}",
    ]
    if info["topic_reset"]:
        reset = info["topic_reset"]
        lines.append(
            f"reset     topic recreated: id {reset['previous_topic_id']} -> {reset['topic_id']}, read from start"
        )
    if info["data_docs"]:
        lines.append(f"docs      {info['data_docs']}")
    print("\n".join(lines))
    return 0


def _branches(args: argparse.Namespace) -> int:
    from pipelines.ingest.stages import BRANCH_PREFIX
    from pipelines.lake import Lake, list_branches

    lake = Lake.from_env()
    rows = []
    for name in list_branches(lake, f"{BRANCH_PREFIX}-"):
        meta = lake.commit_info(name).metadata or {}
        state = "failed validation" if meta.get(keys.VALIDATION) == "failed" else "incomplete (crashed/running)"
        stage, run_id = meta.get(keys.STAGE), meta.get(keys.RUN_ID)
        rows.append({"branch": name, "state": state, "stage": stage, "run_id": run_id})
        if args.prune:
            lake.delete_branch(name)
    if args.format == "json":
        print(json.dumps({"branches": rows, "pruned": bool(args.prune)}, indent=2))
    else:
        for r in rows:
            print(f"{'deleted ' if args.prune else ''}{r['branch']}  {r['state']}  (last stage: {r['stage']})")
        if not rows:
            print("no leftover ingest branches")
    return 0


def _reset_offsets(args: argparse.Namespace) -> int:
    from pipelines import layout
    from pipelines.ingest.consume import true_end_offsets
    from pipelines.ingest.offsets import current_topic_id, offsets_document
    from pipelines.ingest.parallel import kafka_consumer_factory
    from pipelines.lake import Lake
    from pipelines.spec import load_spec

    if not args.yes:
        print("reset-offsets moves where the next ingestion starts; pass --yes to confirm", file=sys.stderr)
        return 2
    spec = load_spec(args.spec)
    lake = Lake.from_env()
    consumer = kafka_consumer_factory()()
    try:
        if args.to == "latest":
            offsets = true_end_offsets(consumer, spec.topic.name)
        else:
            from kafka import TopicPartition

            from pipelines.ingest.consume import topic_partitions

            tps = [TopicPartition(spec.topic.name, p) for p in topic_partitions(consumer, spec.topic.name)]
            offsets = {tp.partition: o for tp, o in consumer.beginning_offsets(tps).items()}
        topic_id = current_topic_id(consumer, spec.topic.name)  # the offsets are of this log
    finally:
        consumer.close()
    wap = lake.wap(f"reset-offsets-{spec.topic.name}", prefix="ops").open()
    wap.write_json(layout.offsets_path(spec), offsets_document(spec.topic.name, offsets, topic_id))
    wap.commit(f"reset offsets of {spec.topic.name} to {args.to}", {keys.OFFSETS_RESET: args.to})
    commit = wap.publish(f"reset offsets of {spec.topic.name} to {args.to}")
    print(f"offsets of {spec.topic.name} on main are now {offsets} (commit {commit})")
    return 0


def _rebuild(args: argparse.Namespace) -> int:
    import time
    import uuid

    from pipelines.ingest.rebuild import rebuild_dataset
    from pipelines.ingest.runner import default_spark
    from pipelines.ingest.stages import ValidationFailedError
    from pipelines.lake import Lake
    from pipelines.spec import load_spec

    spec = load_spec(args.spec)
    run_id = args.run_id or f"rebuild-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}"
    try:
        outcome = rebuild_dataset(Lake.from_env(), default_spark(), spec, run_id)
    except ValidationFailedError as exc:
        print(f"rebuild of {spec.name} failed the gate: {exc}", file=sys.stderr)
        return 1
    published, feats = outcome.published, outcome.features
    assert published is not None and feats is not None
    if args.format == "json":
        print(json.dumps(outcome.to_dict(), indent=2, sort_keys=True, default=str))
    else:
        print(
            f"rebuilt {spec.name}: {feats.rows} rows from {feats.raw_rows} raw events "
            f"({feats.duplicates_dropped} duplicates dropped) in {feats.seconds:.1f}s; published "
            f"{published.tag} at main {published.commit}"
        )
    return 0
