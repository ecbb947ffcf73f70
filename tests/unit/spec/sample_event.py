"""One valid transactions event for the spec tests (test_spec, test_event_hostile)."""

from __future__ import annotations

from typing import Any


def good_event(i: int = 1) -> dict[str, Any]:
    return {
        "event_id": f"e{i}",
        "customer_id": "c1",
        "event_time": "2026-11-21T10:00:00Z",
        "is_fraud": False,
        "amount": 12.5,
        "merchant_category": "grocery",
        "country": "US",
        "channel": "chip",
        "device_age_days": None,
        "customer_tenure_days": 400,
        "hour_of_day": 10,
        "distance_from_home_km": 2.0,
        "card_present": True,
        "is_international": False,
    }
