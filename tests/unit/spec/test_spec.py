"""The dataset spec: the built-in one loads, bad files fail naming the file, the field and the reason."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pipelines.errors import SpecError
from pipelines.spec import builtin_specs, check_event, load_spec, spec_hash
from pipelines.spec.loader import parse_spec
from tests.unit.spec.sample_event import good_event

BUILTIN = Path(__file__).resolve().parents[3] / "pipelines/spec/builtin/transactions.yaml"


def write(tmp_path: Path, data: object, name: str = "spec.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return path


def base() -> dict:
    return yaml.safe_load(BUILTIN.read_text())


def test_builtin_transactions_spec() -> None:
    assert "transactions" in builtin_specs()
    spec = load_spec("transactions")
    assert spec.label == "is_fraud" and spec.entity_key == "customer_id" and spec.event_id == "event_id"
    assert {"amount", "merchant_category", "country", "channel", "device_age_days"} <= {f.name for f in spec.features}
    assert spec.model_categorical_inputs == ["merchant_category", "country", "channel"]
    assert "cust_txn_count_24h" in spec.model_numeric_inputs
    assert len(spec_hash(spec)) == 16


def test_flywheel_spec_env_picks_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = base()
    data["name"] = "custom"
    monkeypatch.setenv("FLYWHEEL_SPEC", str(write(tmp_path, data)))
    assert load_spec().name == "custom"
    assert spec_hash(load_spec()) != spec_hash(load_spec("transactions"))


@pytest.mark.parametrize(
    ("mutate", "field", "reason"),
    [
        (lambda d: d["features"][0].update(min=10, max=1), "features.0.numeric", "greater than max"),
        (lambda d: d["features"][1].update(values=[]), "features.1.categorical.values", "at least 1"),
        (
            lambda d: d["features"][0].update(type="text"),
            "features.0",
            "does not match any of the expected tags",
        ),
        (lambda d: d.update(label="event_id"), "(top level)", "four different fields"),
        (lambda d: d["split"].update(train=0.9), "split", "must be 1.0"),
        (lambda d: d["aggregates"][1].update(column="country"), "(top level)", "not a numeric feature"),
        (lambda d: d["model"].update(hidden_dims=[64, 0]), "model.hidden_dims", "at least 1"),
        (lambda d: d.pop("topic"), "topic", "Field required"),
        (lambda d: d.update(colour="blue"), "colour", "Extra inputs are not permitted"),
        (
            lambda d: d["features"][2].update(name="2bad"),
            "features.2.categorical.name",
            "not a valid column name",
        ),
    ],
)
def test_bad_spec_names_file_field_and_reason(tmp_path: Path, mutate, field: str, reason: str) -> None:
    data = base()
    mutate(data)
    path = write(tmp_path, data)
    with pytest.raises(SpecError) as err:
        load_spec(path)
    message = str(err.value)
    assert str(path) in message
    assert f"field '{field}'" in message
    assert reason in message


def test_unreadable_and_non_mapping_specs(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="neither a readable file nor a built-in spec"):
        load_spec(tmp_path / "missing.yaml")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_spec(write(tmp_path, "name: [unclosed"))
    with pytest.raises(SpecError, match="YAML mapping at the top level"):
        load_spec(write(tmp_path, "- a\n- b\n"))


def test_check_event_normalizes_a_good_event() -> None:
    import json

    result = check_event(load_spec(), json.dumps(good_event()).encode())
    assert result.ok and result.reason is None
    assert result.record["event_time"] == 1795255200000
    assert result.record["is_fraud"] == 0 and result.record["device_age_days"] is None


@pytest.mark.parametrize(
    ("patch", "reason"),
    [
        ({"amount": "abc"}, "amount must be a number"),
        ({"amount": -1}, "below the minimum"),
        ({"country": "XX"}, "country='XX' is not an allowed value"),
        ({"event_time": "yesterday"}, "not ISO 8601"),
        ({"event_time": "2026-11-21T10:00:00"}, "no time zone"),
        ({"is_fraud": "maybe"}, "is_fraud must be"),
        ({"hour_of_day": 3.5}, "must be an integer"),
        ({"card_present": 1}, "card_present must be true or false"),
        ({"customer_tenure_days": None}, "customer_tenure_days is null"),
        ({"event_id": ""}, "event_id is missing"),
        ({"event_time": 2**63}, f"event_time {2**63} is out of range"),  # int64 ms would overflow
        ({"event_time": -1e15}, "is out of range (years 1 to 9999)"),
    ],
)
def test_check_event_rejects_with_reason(patch: dict, reason: str) -> None:
    import json

    result = check_event(load_spec(), json.dumps({**good_event(), **patch}))
    assert not result.ok and reason in result.reason


def test_check_event_rejects_broken_json_and_missing_fields() -> None:
    spec = load_spec()
    assert "not valid JSON" in check_event(spec, b'{"event_id": "e1", "amo').reason
    assert "not an object" in check_event(spec, b"[1, 2]").reason
    event = good_event()
    del event["channel"]
    import json

    assert check_event(spec, json.dumps(event)).reason == "channel is missing"


def test_missing_label_says_missing() -> None:
    import json

    event = good_event()
    del event["is_fraud"]
    assert check_event(load_spec(), json.dumps(event)).reason == "is_fraud is missing"


def test_integers_beyond_int64_are_rejected_when_the_spec_has_no_bound(tmp_path: Path) -> None:
    import json

    data = load_spec().model_dump(mode="json")
    for feature in data["features"]:
        if feature["name"] == "customer_tenure_days":
            feature["max"] = None
    spec = parse_spec(data, tmp_path / "unbounded.yaml")
    result = check_event(spec, json.dumps({**good_event(), "customer_tenure_days": 2**63}))
    assert not result.ok and result.reason == f"customer_tenure_days={2**63} is outside the 64-bit integer range"
    assert check_event(spec, json.dumps({**good_event(), "customer_tenure_days": 2**62})).ok
