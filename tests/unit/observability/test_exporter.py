"""The pipeline exporter reads each value from its source on every scrape: stage records written in the IO
manager's JSON format, a real MLflow registry (SQLite, no server), and the Kafka lag through an injected
reader (a stub: Kafka and lakeFS need the embedded stack, which unit tests do not start)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from pipelines.cli import build_parser
from pipelines.lineage import keys
from pipelines.lineage.records import DatasetVersion, FeatureBatch, RawBatch, record_from_json, record_to_json
from pipelines.observability.exporter import (
    DRIFT_FILES,
    GUARD_FILE,
    RECORDS_FOLDER,
    Exporter,
    Sample,
    drift_scores,
    readers_for,
    serve,
)
from pipelines.registry import DECISION_TAG


def write_record(base: Path, asset: str, record) -> None:
    folder = base / RECORDS_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{asset}.json").write_text(record_to_json(record))


def raw_batch(events: int, quarantined: int) -> RawBatch:
    return RawBatch(
        run_id="r1", spec="transactions", topic="transactions", base_commit="c0", branch="ingest-r1", commit="c1",
        start_offsets={"0": 0}, next_offsets={"0": events}, offset_ranges={"0": [0, events]}, events=events,
        valid=events - quarantined, quarantined=quarantined, reasons={"bad_amount": quarantined}, raw_paths=[],
        quarantine_paths=[], stopped_by="end", seconds={},
    )  # fmt: skip


def samples(text: bytes) -> dict[tuple[str, tuple], float]:
    """{(sample name, sorted labels): value} of an exposition."""
    out = {}
    for family in text_string_to_metric_families(text.decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_ingestion_values_come_from_the_latest_records(tmp_path: Path) -> None:
    write_record(tmp_path, "raw_events", raw_batch(events=1000, quarantined=25))
    features = FeatureBatch(branch="b", commit="c", rows=960, raw_rows=975, duplicates_dropped=15, splits={},
                            entities=10, paths=[], vocabularies={}, seconds=1.0)  # fmt: skip
    write_record(tmp_path, "features", features)
    exporter = Exporter(readers_for(tmp_path, None, None))
    got = samples(exporter.render())
    ds = (("dataset", "transactions"),)
    assert got[("flywheel_ingest_quarantine_fraction", ds)] == pytest.approx(0.025)
    assert got[("flywheel_ingest_rows", ds)] == 960  # no published dataset yet: the features record
    published = DatasetVersion(repository="flywheel", commit="c2", tag="t", version=3, spec="transactions",
                               features_path="features/transactions/", metadata={keys.ROWS: "955"})  # fmt: skip
    write_record(tmp_path, "validated_dataset", published)
    got = samples(exporter.render())  # read again on the next scrape
    assert got[("flywheel_ingest_rows", ds)] == 955
    assert got[("flywheel_exporter_source_up", (("source", "records"),))] == 1
    assert got[("flywheel_exporter_source_up", (("source", "drift"),))] == 1  # no drift report: nothing, no error
    assert not any(name.startswith("flywheel_drift") for name, _ in got)


def drift_record(drifted: bool, checked_at: float, psi: float) -> str:
    """A drift record as pipelines/monitoring writes it (DriftReport's JSON: per column statistics)."""
    columns = [
        {"name": "amount", "test": "ks", "psi": psi, "js": 0.05, "ks": 0.12, "p_value": 0.001},
        {"name": "country", "test": "chi2", "psi": 0.01, "js": 0.02, "statistic": 3.5, "p_value": 0.3},
    ]
    record = {"spec": "transactions", "decision": "drift" if drifted else "no drift", "drifted": drifted,
              "columns": columns, "checked_at": checked_at}  # fmt: skip
    return json.dumps({"kind": "drift_report", "schema": 1, "record": record})


def test_drift_record_gives_scores_verdict_and_the_guard_gives_the_breaker(tmp_path: Path) -> None:
    drift = tmp_path / RECORDS_FOLDER / "reports" / "drift"
    drift.mkdir(parents=True)
    (tmp_path / RECORDS_FOLDER / "drift_report.json").write_text(drift_record(False, checked_at=100.0, psi=0.02))
    (drift / "latest.json").write_text(drift_record(True, checked_at=200.0, psi=0.31))  # a newer check (sensor)
    (drift / "guard.json").write_text(json.dumps({"breaker_open": True, "consecutive_rejections": 3}))
    got = samples(Exporter(readers_for(tmp_path, None, None)).render())
    assert got[("flywheel_drift_score", (("feature", "amount"), ("statistic", "psi")))] == pytest.approx(0.31)
    assert got[("flywheel_drift_score", (("feature", "amount"), ("statistic", "ks")))] == pytest.approx(0.12)
    assert got[("flywheel_drift_score", (("feature", "country"), ("statistic", "chi2")))] == pytest.approx(3.5)
    assert got[("flywheel_drift_detected", ())] == 1
    assert got[("flywheel_retrain_circuit_open", ())] == 1


def test_a_damaged_record_marks_its_source_down_and_keeps_the_rest(tmp_path: Path) -> None:
    (tmp_path / RECORDS_FOLDER).mkdir()
    (tmp_path / RECORDS_FOLDER / "raw_events.json").write_text("{not json")
    readers = {
        **readers_for(tmp_path, None, None),
        "kafka": lambda: [Sample("flywheel_ingest_lag_events", 7, {"topic": "t"})],
    }
    got = samples(Exporter(readers).render())
    assert got[("flywheel_exporter_source_up", (("source", "records"),))] == 0
    assert got[("flywheel_ingest_lag_events", (("topic", "t"),))] == 7


def test_a_slow_source_is_left_out_after_its_deadline() -> None:
    def slow() -> list[Sample]:
        time.sleep(3)
        return [Sample("flywheel_ingest_lag_events", 1, {"topic": "slow"})]

    fast = [Sample("flywheel_ingest_rows", 5, {"dataset": "d"})]
    exporter = Exporter({"kafka": slow, "records": lambda: fast}, timeout_s=0.3)
    started = time.monotonic()
    got = samples(exporter.render())
    assert time.monotonic() - started < 2.0
    assert got[("flywheel_exporter_source_up", (("source", "kafka"),))] == 0
    assert got[("flywheel_ingest_rows", (("dataset", "d"),))] == 5
    assert not any(name == "flywheel_ingest_lag_events" for name, _ in got)
    exporter.close()


def test_gate_decisions_are_counted_from_mlflow_version_tags(tmp_path: Path) -> None:
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.create_registered_model("fraud")
    for decision in ("passed", "rejected", "rejected", None):
        version = client.create_model_version("fraud", source=str(tmp_path / "model"))
        if decision:
            client.set_model_version_tag("fraud", version.version, DECISION_TAG, decision)
    got = samples(Exporter(readers_for(None, uri, None)).render())
    assert got[("flywheel_gate_decisions_total", (("decision", "passed"), ("model", "fraud")))] == 1
    assert got[("flywheel_gate_decisions_total", (("decision", "rejected"), ("model", "fraud")))] == 2
    assert got[("flywheel_exporter_source_up", (("source", "mlflow"),))] == 1


def test_lag_reader_feeds_the_lag_gauge() -> None:
    got = samples(Exporter(readers_for(None, None, lambda: {"transactions": 1234})).render())
    assert got[("flywheel_ingest_lag_events", (("topic", "transactions"),))] == 1234


def test_http_server_answers_metrics_healthz_and_404() -> None:
    exporter = Exporter({"kafka": lambda: [Sample("flywheel_ingest_lag_events", 3, {"topic": "t"})]})
    server, _ = serve(exporter, "127.0.0.1", 0)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with urllib.request.urlopen(f"{base}/metrics", timeout=10) as resp:
            assert resp.headers["Content-Type"].startswith("text/plain")
            assert b'flywheel_ingest_lag_events{topic="t"} 3.0' in resp.read()
        with urllib.request.urlopen(f"{base}/healthz", timeout=10) as resp:
            assert resp.status == 200
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(f"{base}/nothing", timeout=10)
        assert err.value.code == 404
    finally:
        server.shutdown()
        exporter.close()


def test_the_cli_registers_the_exporter() -> None:
    args = build_parser().parse_args(["exporter", "--port", "9200", "--host", "0.0.0.0"])
    assert (args.command, args.port, args.host) == ("exporter", 9200, "0.0.0.0")


def test_drift_scores_are_the_record_class_scores() -> None:
    text = drift_record(True, checked_at=1.0, psi=0.4)
    scores = drift_scores(text)
    assert scores == record_from_json(text).scores
    assert scores["amount"]["psi"] == pytest.approx(0.4) and scores["country"]["chi2"] == pytest.approx(3.5)
    with pytest.raises(ValueError, match=r"unknown record kind 'not_a_known_kind'.*run the drift check again"):
        drift_scores(text.replace('"drift_report"', '"not_a_known_kind"'))


def test_the_exporter_reads_the_files_the_drift_check_and_sensor_write() -> None:
    from pipelines.monitoring.stage import GUARD_FILE as SENSOR_GUARD
    from pipelines.monitoring.stage import LATEST

    assert DRIFT_FILES[1] == f"reports/drift/{LATEST}" and f"reports/drift/{SENSOR_GUARD}" == GUARD_FILE
