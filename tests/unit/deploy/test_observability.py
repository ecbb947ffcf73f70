"""The alert rules and Grafana dashboards name only metrics the code exports.

Each PromQL expression is parsed (promql-parser, the Prometheus grammar) and every series it selects must be
  - a catalog metric (pipelines/observability/metrics.py) with the wire suffix of its kind (_total for counters,
    _bucket/_sum/_count for histograms), and
  - present in a real scrape: the serving app's /metrics (built in-process as tests/unit/serving does, after real
    requests) and the pipeline exporter's /metrics over HTTP, fed by every one of its sources.
`up` is Prometheus' own series and the only name allowed outside the catalog.
"""

from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path

import promql_parser
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from pipelines.lineage import keys
from pipelines.lineage.records import DatasetVersion, RawBatch, record_to_json
from pipelines.observability.exporter import RECORDS_FOLDER, Exporter, readers_for, serve
from pipelines.observability.metrics import CATALOG, PIPELINE, SERVING
from pipelines.registry import DECISION_TAG

DEPLOY = Path(__file__).resolve().parents[3] / "deploy"
PROMETHEUS_OWN = {"up"}
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


def series_names(expr: str) -> set[str]:
    """Every metric name an expression selects (raises ValueError on a syntax error)."""
    names: set[str] = set()

    def visit(node: object) -> bool:
        if isinstance(node, promql_parser.VectorSelector) and node.name:
            names.add(node.name)
        return True

    promql_parser.walk(promql_parser.parse(expr), visit)
    return names


def catalog_metric(wire: str) -> str | None:
    """The catalog name a wire name stands for, if its suffix matches the metric's kind."""
    for name, m in CATALOG.items():
        if any(wire == name + suffix for suffix in SUFFIXES[m.kind]):
            return name
    return None


def alert_rules() -> list[dict]:
    doc = yaml.safe_load((DEPLOY / "prometheus/alerts.yml").read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def dashboard_queries() -> list[tuple[str, str]]:
    found = []
    for path in sorted((DEPLOY / "grafana/dashboards").glob("*.json")):
        board = json.loads(path.read_text())
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                found.append((f"{path.name}: {panel['title']}", target["expr"]))
        for var in board.get("templating", {}).get("list", []):
            if var.get("type") == "query":
                inner = re.fullmatch(r"label_values\((\w+),\s*\w+\)", var["definition"])
                assert inner, f"{path.name}: variable {var['name']} is not label_values(metric, label)"
                found.append((f"{path.name}: variable {var['name']}", inner.group(1)))
    return found


# Grafana's interval variables are not PromQL: give them a value before parsing.
def grafana_to_promql(expr: str) -> str:
    return expr.replace("$__rate_interval", "5m").replace("$__range", "1h").replace("$version", ".*")


QUERIES = [(f"alert {r['alert']}", r["expr"]) for r in alert_rules()] + dashboard_queries()


def test_the_kit_has_the_alerts_and_panels_the_issue_asks_for() -> None:
    alerts = {r["alert"] for r in alert_rules()}
    assert {"FlywheelServingErrorRateHigh", "FlywheelServingLatencyP99High", "FlywheelDriftScoreHigh",
            "FlywheelRetrainCircuitOpen", "FlywheelIngestLagGrowing", "FlywheelGateRejected"} <= alerts  # fmt: skip
    titles = " | ".join(where for where, _ in dashboard_queries()).lower()
    for topic in ("throughput", "latency", "errors", "rollout split", "score distribution", "ingestion lag",
                  "rows published", "quarantine", "gate decisions", "drift scores"):  # fmt: skip
        assert topic in titles, f"no dashboard panel about {topic}"


@pytest.mark.parametrize(("where", "expr"), QUERIES, ids=[w for w, _ in QUERIES])
def test_every_query_parses_and_names_catalog_metrics(where: str, expr: str) -> None:
    names = series_names(grafana_to_promql(expr))
    assert names, f"{where}: selects no metric"
    for name in names - PROMETHEUS_OWN:
        assert catalog_metric(name), f"{where}: {name} is not a catalog metric with its kind's wire suffix"


def test_a_query_with_an_unknown_metric_or_bad_syntax_is_caught() -> None:
    assert catalog_metric("flywheel_serving_requests") is None  # a counter without _total
    assert catalog_metric("flywheel_drift_score_total") is None  # a gauge with a counter's suffix
    assert (
        catalog_metric("flywheel_serving_request_latency_seconds_bucket") == "flywheel_serving_request_latency_seconds"
    )
    with pytest.raises(ValueError):
        series_names("sum(rate(flywheel_serving_requests_total[5m])")


# ---- what the code exports -----------------------------------------------------------------------------


def exposition_wire_names(text: str) -> set[str]:
    """Every wire name a /metrics exposition declares (families without samples yet included)."""
    names = set()
    for family in text_string_to_metric_families(text):
        kind = family.type if family.type in SUFFIXES else "gauge"
        names |= {family.name + suffix for suffix in SUFFIXES[kind]}
    return names


def serving_scrape() -> set[str]:
    from tests.unit.serving.test_app import events, serving

    with serving() as (client, _):
        assert client.post("/v1/predict", json={"records": events(3)}).status_code == 200
        assert client.post("/v1/predict", json={"records": [{"nonsense": 1}]}).status_code == 422
        return exposition_wire_names(client.get("/metrics").text)


def exporter_scrape(tmp: Path) -> set[str]:
    from mlflow import MlflowClient

    records = tmp / RECORDS_FOLDER
    records.mkdir()
    raw = RawBatch(run_id="r", spec="transactions", topic="t", base_commit="c0", branch="b", commit="c1",
                   start_offsets={}, next_offsets={}, offset_ranges={}, events=10, valid=9, quarantined=1,
                   reasons={}, raw_paths=[], quarantine_paths=[], stopped_by="end", seconds={})  # fmt: skip
    (records / "raw_events.json").write_text(record_to_json(raw))
    published = DatasetVersion(repository="r", commit="c", tag="t", version=1, spec="transactions",
                               features_path="f/", metadata={keys.ROWS: "9"})  # fmt: skip
    (records / "validated_dataset.json").write_text(record_to_json(published))
    column = {"name": "amount", "test": "ks", "psi": 0.1, "js": 0.05, "ks": 0.1, "p_value": 0.2}
    drift = {"spec": "transactions", "decision": "no drift", "drifted": False, "columns": [column]}
    (records / "drift_report.json").write_text(json.dumps({"kind": "drift_report", "schema": 1, "record": drift}))
    (records / "reports" / "drift").mkdir(parents=True)
    (records / "reports" / "drift" / "guard.json").write_text(json.dumps({"breaker_open": False}))
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.create_registered_model("m")
    for decision in ("passed", "rejected"):
        version = client.create_model_version("m", source=str(tmp))
        client.set_model_version_tag("m", version.version, DECISION_TAG, decision)
    # Kafka lag through a stub reader: Kafka and lakeFS run only in the integration tests.
    exporter = Exporter(readers_for(tmp, uri, lambda: {"transactions": 5}), timeout_s=30)
    server, _ = serve(exporter, "127.0.0.1", 0)
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/metrics"
        with urllib.request.urlopen(url, timeout=30) as resp:
            text = resp.read().decode()
    finally:
        server.shutdown()
        exporter.close()
    assert 'flywheel_exporter_source_up{source="mlflow"} 1.0' in text, text
    return exposition_wire_names(text)


@pytest.fixture(scope="module")
def serving_exported() -> set[str]:
    return serving_scrape()


@pytest.fixture(scope="module")
def exporter_exported(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    return exporter_scrape(tmp_path_factory.mktemp("exporter"))


def test_every_queried_metric_is_exported_by_serving_or_the_exporter(
    serving_exported: set[str], exporter_exported: set[str]
) -> None:
    exported = serving_exported | exporter_exported
    missing = {
        f"{where}: {name}"
        for where, expr in QUERIES
        for name in series_names(grafana_to_promql(expr)) - PROMETHEUS_OWN
        if name not in exported
    }
    assert not missing, f"queried but exported by no code: {sorted(missing)}"


def test_the_exporter_exports_the_whole_pipeline_catalog(exporter_exported: set[str]) -> None:
    for m in PIPELINE:
        if m.name.startswith("flywheel_features_updater"):
            continue  # exported by the feature updater (`flywheel features update --metrics-port`)
        assert m.name + SUFFIXES[m.kind][0] in exporter_exported, m.name


def test_serving_exports_the_whole_serving_catalog(serving_exported: set[str]) -> None:
    for m in SERVING:
        assert m.name + SUFFIXES[m.kind][0] in serving_exported, m.name


def test_hpa_requests_metric_is_the_adapter_rule_over_a_catalog_counter() -> None:
    adapter = yaml.safe_load((DEPLOY / "helm/prometheus-adapter-values.yaml").read_text())
    hpa = yaml.safe_load((DEPLOY / "k8s/serving/hpa.yaml").read_text())
    pods_metric = next(m["pods"]["metric"]["name"] for m in hpa["spec"]["metrics"] if m["type"] == "Pods")
    produced = {}
    for rule in adapter["rules"]["custom"]:
        series = next(iter(series_names(rule["seriesQuery"])))
        assert catalog_metric(series), series
        name = re.sub(rule["name"]["matches"], rule["name"]["as"].replace("${1}", r"\1"), series)
        produced[name] = series
        assert {"namespace", "pod"} <= set(rule["resources"]["overrides"])
    assert produced.get(pods_metric) == "flywheel_serving_requests_total"
    assert any(m["type"] == "Resource" and m["resource"]["name"] == "cpu" for m in hpa["spec"]["metrics"])


def test_scrape_configs_keep_the_labels_the_adapter_and_alerts_use() -> None:
    k8s = yaml.safe_load((DEPLOY / "prometheus/prometheus.yml").read_text())
    targets = {r.get("target_label") for job in k8s["scrape_configs"] for r in job.get("relabel_configs", [])}
    assert {"namespace", "pod", "component"} <= targets
    compose = yaml.safe_load((DEPLOY / "prometheus/prometheus-compose.yml").read_text())
    components = {t["labels"]["component"] for job in compose["scrape_configs"] for t in job["static_configs"]}
    assert components >= {"serving", "exporter"}
    for rule in alert_rules():
        for label in re.findall(r'component="(\w+)"', rule["expr"]):
            assert label in components, rule["alert"]


def test_dashboards_are_importable_grafana_json() -> None:
    for path in sorted((DEPLOY / "grafana/dashboards").glob("*.json")):
        board = json.loads(path.read_text())
        assert board["uid"] and board["title"].startswith("Flywheel"), path.name
        variables = {v["name"]: v for v in board["templating"]["list"]}
        assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
        ids, cells = set(), set()
        for panel in board["panels"]:
            assert panel["id"] not in ids, f"{path.name}: panel id {panel['id']} twice"
            ids.add(panel["id"])
            assert panel["datasource"]["uid"] == "${datasource}", f"{path.name}: {panel['title']}"
            g = panel["gridPos"]
            assert g["x"] + g["w"] <= 24, f"{path.name}: {panel['title']} is wider than the grid"
            area = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
            assert not area & cells, f"{path.name}: {panel['title']} overlaps another panel"
            cells |= area
            assert {t["refId"] for t in panel["targets"]} and all(t["expr"] for t in panel["targets"])


def test_catalog_names_are_unique() -> None:
    names = [m.name for m in SERVING + PIPELINE]
    assert sorted({n for n in names if names.count(n) > 1}) == []  # a duplicate breaks create() ("Duplicated")
