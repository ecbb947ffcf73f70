"""Simulated event streams: seeded transactions traffic per named scenario, and malformed-event injection."""

from pipelines.simulate.malformed import MALFORMED_KINDS, Malformer
from pipelines.simulate.scenarios import SCENARIOS, Scenario, get_scenario, scenario_names
from pipelines.simulate.transactions import check_spec, generate_events, make_population

__all__ = [
    "MALFORMED_KINDS",
    "SCENARIOS",
    "Malformer",
    "Scenario",
    "check_spec",
    "generate_events",
    "get_scenario",
    "make_population",
    "scenario_names",
]
