"""The DriftReport record (JSON round trip, the scores the exporter reads) and the HTML report (self-contained,
a plot per column, the summary most severe first, the drifted column named)."""

from __future__ import annotations

import re
from pathlib import Path

import orjson

from pipelines.devstack.produce.encode import frame_to_events
from pipelines.devstack.simulate.transactions import generate_events
from pipelines.lineage.records import DriftReport, record_from_json, record_to_json
from pipelines.monitoring.check import check_drift
from pipelines.monitoring.profile import build_profile
from pipelines.monitoring.reference import Champion
from pipelines.monitoring.report import write_report
from pipelines.monitoring.stage import rewrite, severity_table, to_record
from pipelines.monitoring.window import Message, events_window
from pipelines.spec import load_spec

SPEC = load_spec("transactions")


def window_of(frame):
    events = frame_to_events(frame, SPEC)
    return events_window([Message(i % 3, i, i, orjson.dumps(e)) for i, e in enumerate(events)], SPEC)


def drifted_report() -> DriftReport:
    reference = build_profile(window_of(generate_events(20_000, "baseline", seed=1)).table, SPEC, bins=10,
                              ks_max_samples=100_000)  # fmt: skip
    frame = generate_events(5000, "baseline", seed=2)
    frame["amount"] = (frame["amount"] * 4).clip(upper=50_000)
    window = window_of(frame)
    result = check_drift(reference, window.table, SPEC, quality=window.quality)
    champion = Champion("transactions", "3", "flywheel", "c" * 64)
    return to_record(SPEC, champion, result, window, predictions=0, reference_rows=reference.rows)


def test_drift_report_round_trips_and_names_the_cause(tmp_path: Path) -> None:
    report = drifted_report()
    again = record_from_json(record_to_json(report))
    assert again == report and isinstance(again, DriftReport)
    assert report.drifted and report.drifted_columns == ["amount"]
    assert report.columns[0]["name"] == "amount"
    assert report.window["valid"] == 5000 and set(report.window["offsets"]) == {"0", "1", "2"}
    assert report.scores["amount"]["psi"] > SPEC.drift.psi_threshold
    assert "chi2" in report.scores["channel"] and "ks_p" in report.scores["amount"]
    rewrite(report, tmp_path / "x.json")
    assert record_from_json((tmp_path / "latest.json").read_text()) == report


def test_html_report_is_self_contained_with_a_plot_per_column(tmp_path: Path) -> None:
    report = drifted_report()
    html = write_report(report, tmp_path / "r.html").read_text()
    assert html.count("<svg") == len(SPEC.features)
    assert not re.search(r"(src|href)=\"https?://", html)  # opens offline
    first_row = html.split("<tr")[2]  # the row after the header: the most severe column
    assert 'href="#col-amount"' in first_row and 'class="drifted"' in html.split("<tr")[2][:20]
    assert "benjamini-hochberg" in html
    assert severity_table(report).splitlines()[2].startswith("| amount |")
