import json
import logging

from pipelines.logs import JsonFormatter


def test_json_formatter_emits_one_object_with_fields() -> None:
    record = logging.LogRecord("flywheel.ingest", logging.INFO, __file__, 1, "consumed %d events", (42,), None)
    record.fields = {"topic": "transactions", "partition": 1}
    payload = json.loads(JsonFormatter().format(record))
    assert payload["msg"] == "consumed 42 events"
    assert payload["level"] == "info" and payload["logger"] == "flywheel.ingest"
    assert payload["topic"] == "transactions" and payload["partition"] == 1
    assert payload["ts"].endswith("Z")
