"""The generated fast path of the event check answers clean events itself and hands the rest over."""

from __future__ import annotations

import json

import pytest

from pipelines.spec import load_spec
from pipelines.spec.events import EventChecker

SPEC = load_spec("transactions")


def clean_event(**changes: object) -> dict:
    event = {
        "event_id": "e1",
        "customer_id": "c1",
        "event_time": 1_767_225_600_000,
        "is_fraud": False,
        "amount": 12.5,
        "merchant_category": "grocery",
        "country": "US",
        "channel": "chip",
        "device_age_days": None,
        "customer_tenure_days": 30,
        "hour_of_day": 7,
        "distance_from_home_km": 3.25,
        "card_present": True,
        "is_international": False,
    }
    event.update(changes)
    return event


@pytest.fixture
def checker_without_general_path(monkeypatch: pytest.MonkeyPatch) -> EventChecker:
    checker = EventChecker(SPEC)
    handed_over: list[bytes] = []
    general = checker.values.__globals__  # the generated function's own namespace

    def record(obj: object, raw: bytes) -> str:
        handed_over.append(raw)
        return "handed over"

    monkeypatch.setitem(general, "decided", record)
    checker.handed_over = handed_over  # type: ignore[attr-defined]
    return checker


def test_a_clean_event_never_reaches_the_general_check(checker_without_general_path: EventChecker) -> None:
    checker = checker_without_general_path
    row = checker.values(json.dumps(clean_event()).encode())
    assert row == ("e1", "c1", 1_767_225_600_000, 0, 12.5, "grocery", "US", "chip", None, 30, 7, 3.25, True, False)
    assert checker.values(json.dumps(clean_event(is_fraud=1, device_age_days=3)).encode())[3] == 1
    assert checker.handed_over == []  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "event",
    [
        clean_event(customer_id=42),  # an integer key is turned into text by the general check
        clean_event(event_time="2026-01-01T00:00:00Z"),  # an ISO timestamp
        clean_event(amount=12),  # an integer for a float column
        clean_event(amount=-1.0),  # below the minimum: the general check says so
        clean_event(country="XX"),
        clean_event(extra=1),  # a field the spec does not know
        clean_event(event_id='e"1'),  # an escaped quote changes the count of quotes
    ],
)
def test_anything_unusual_is_handed_to_the_general_check(
    checker_without_general_path: EventChecker, event: dict
) -> None:
    checker = checker_without_general_path
    assert checker.values(json.dumps(event).encode()) == "handed over"


def test_a_repeated_key_is_found_by_the_general_check() -> None:
    checker = EventChecker(SPEC)
    text = json.dumps(clean_event())[:-1] + ', "amount": 13.5}'
    assert checker.values(text.encode()) == "duplicate key 'amount'" == checker.general_values(text.encode())


def test_a_failure_inside_the_check_is_the_events_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    checker = EventChecker(SPEC)

    def broken(obj: object, raw: bytes) -> str:
        raise ZeroDivisionError("a bug")

    monkeypatch.setitem(checker.values.__globals__, "decided", broken)
    unusual = json.dumps(clean_event(customer_id=42)).encode()
    assert checker.values(unusual) == "checking the event failed: ZeroDivisionError"
