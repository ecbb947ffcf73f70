"""Which job a drift-triggered retraining needs: ingest-then-retrain, or retrain on what main already holds.

The drift window is a span of Kafka offsets per partition. When lakeFS `main` already records offsets at or past
the window's end on every partition (the lag sensor or the hourly ingest schedule ingested those events before
the drift check saw them), ingesting again finds nothing new, the pipeline skips training and nothing is
retrained: the retrain has to run on main as it is (`retrain_job`). Otherwise main lacks drifted events and
`pipeline_job` ingests them first.

    target = retrain_target(report.window["offsets"], ingested_offsets)   # offsets main reads from next
    target.job, target.reason
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

PIPELINE_JOB = "pipeline_job"
RETRAIN_JOB = "retrain_job"


@dataclass(frozen=True)
class RetrainTarget:
    job: str  # PIPELINE_JOB or RETRAIN_JOB
    reason: str
    missing_events: int  # offsets of the window that main has not ingested


def retrain_target(window_offsets: Mapping[str, Sequence[int]], main_offsets: Mapping[int, int]) -> RetrainTarget:
    """`window_offsets`: {partition: [first offset, next offset]} of the drift window (DriftReport.window);
    `main_offsets`: {partition: next offset to ingest} recorded on main (after a topic reset: the new log's start,
    as pipelines.ingest.lag.kafka_lag reports it)."""
    if not window_offsets:
        return RetrainTarget(PIPELINE_JOB, "the drift window records no Kafka offsets: ingest, then retrain", 0)
    behind: list[str] = []
    missing = 0
    for partition, span in sorted(window_offsets.items(), key=lambda ps: int(ps[0])):
        end = int(span[1])
        ingested = int(main_offsets.get(int(partition), 0))
        if ingested < end:
            missing += end - max(ingested, int(span[0]))
            behind.append(f"partition {partition}: main at {ingested}, window ends at {end}")
    if behind:
        return RetrainTarget(
            PIPELINE_JOB,
            f"main has not ingested {missing} event(s) of the drift window ({'; '.join(behind)}): ingest, then retrain",
            missing,
        )
    covered = ", ".join(f"{p}: {main_offsets.get(int(p), 0)}" for p in sorted(window_offsets, key=int))
    return RetrainTarget(
        RETRAIN_JOB,
        f"main already holds the drift window (main's offsets {{{covered}}} are at or past its end): retrain on main",
        0,
    )
