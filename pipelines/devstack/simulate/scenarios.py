"""Named scenarios: the knobs of the transactions simulator, one frozen object per scenario.

`baseline` is normal traffic (fraud ~2%). `drift` is what a model trained on baseline meets later: more online
payments, higher amounts, customers from growth markets paying more often, more cross-border traffic towards
other countries, younger devices, and a new fraud pattern (card testing: bursts of small digital-goods
purchases from brand-new devices; fraud ~5% in all) that baseline fraud never showed. A gradient-boosted
model trained on baseline loses about 0.1 AUC on it (tests/unit/test_simulate.py measures it). A new scenario
is one more entry in SCENARIOS built with `dataclasses.replace(BASELINE, name=..., ...)`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType

from pipelines.errors import FlywheelError

#: Where event time starts unless the caller says otherwise: fixed, so that a seed fixes every byte.
DEFAULT_START = datetime(2026, 1, 1, tzinfo=UTC)


def _frozen(values: Mapping[str, float] | None = None) -> Mapping[str, float]:
    return MappingProxyType(dict(values or {}))


@dataclass(frozen=True, slots=True)
class Scenario:
    """Parameters of one simulated traffic regime.

    Multipliers default to 1 (no change) and shifts to 0, so a scenario lists only what differs from normal.
    """

    name: str
    description: str
    #: Event time starts here by default (the caller may pass another start).
    start: datetime = DEFAULT_START
    #: Event time spans this many whole days from the start.
    days: int = 14
    #: Average events per customer over the span; sets the population size (history features need several).
    events_per_customer: float = 30.0
    #: Added to the log-odds of a card-not-present (online/manual) payment.
    online_shift: float = 0.0
    #: Added to every log amount (customers' habits move with it, so it is not by itself suspicious).
    amount_log_shift: float = 0.0
    #: Multipliers on the merchant-category mix of normal traffic.
    category_multipliers: Mapping[str, float] = field(default_factory=_frozen)
    #: Multipliers on how often customers from each home country pay (a campaign in new markets).
    home_activity_multipliers: Mapping[str, float] = field(default_factory=_frozen)
    #: Multiplier on the chance that a normal payment goes to a merchant abroad.
    international_multiplier: float = 1.0
    #: Multipliers on the mix of foreign merchant countries.
    foreign_country_multipliers: Mapping[str, float] = field(default_factory=_frozen)
    #: Chance that a normal card-not-present payment comes from a device first seen in the last days.
    new_device_rate: float = 0.03
    #: Multiplier on the age of customers' usual devices (below 1: younger devices).
    device_age_scale: float = 1.0
    #: Share of events that come from account-takeover sessions (stolen card or credentials).
    takeover_rate: float = 0.022
    #: Share of events that come from card-testing sessions (the pattern `drift` introduces).
    card_testing_rate: float = 0.0
    #: Extra log-odds of fraud for small digital-goods payments from new devices; 0 = not a fraud signal.
    card_testing_risk: float = 0.0

    def __post_init__(self) -> None:
        if self.days < 1:
            raise ValueError("days must be at least 1")
        if self.events_per_customer <= 0:
            raise ValueError("events_per_customer must be positive")
        for name in ("new_device_rate", "takeover_rate", "card_testing_rate"):
            if not 0 <= getattr(self, name) < 0.5:
                raise ValueError(f"{name} must be in [0, 0.5)")
        if self.start.tzinfo is None:
            raise ValueError("start must be time-zone aware")


BASELINE = Scenario(name="baseline", description="Normal card traffic with account-takeover fraud (~2%).")

DRIFT = Scenario(
    name="drift",
    description=(
        "Shifted traffic (more online, higher amounts, more and different cross-border payments, younger "
        "devices) and a new fraud pattern: card testing with small digital-goods payments from new devices."
    ),
    # Starts after a default baseline run ends, so both can land in one dataset without overlapping.
    start=datetime(2026, 2, 1, tzinfo=UTC),
    online_shift=0.9,
    amount_log_shift=0.5,
    category_multipliers=_frozen({"digital_goods": 2.0, "electronics": 1.5, "gambling": 1.5, "grocery": 0.7}),
    home_activity_multipliers=_frozen({"BR": 3.0, "IN": 3.0, "NG": 4.0, "CN": 2.5, "OTHER": 3.0}),
    international_multiplier=2.5,
    foreign_country_multipliers=_frozen(
        {"BR": 3.0, "IN": 3.0, "NG": 4.0, "CN": 3.0, "OTHER": 3.0, "GB": 0.5, "DE": 0.5, "FR": 0.5}
    ),
    new_device_rate=0.15,
    device_age_scale=0.3,
    card_testing_rate=0.04,
    card_testing_risk=6.0,
)

SCENARIOS: dict[str, Scenario] = {s.name: s for s in (BASELINE, DRIFT)}


def scenario_names() -> list[str]:
    return list(SCENARIOS)


def get_scenario(scenario: str | Scenario) -> Scenario:
    """A scenario object, or the registered one of that name (a clear error lists the names)."""
    if isinstance(scenario, Scenario):
        return scenario
    try:
        return SCENARIOS[scenario]
    except KeyError:
        raise FlywheelError(f"unknown scenario {scenario!r}; pick one of: {', '.join(SCENARIOS)}") from None
