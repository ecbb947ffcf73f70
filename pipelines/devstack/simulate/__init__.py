"""Simulated event streams: seeded transactions traffic per named scenario, and malformed-event injection."""

from pipelines.devstack.simulate.malformed import MALFORMED_KINDS, Malformer
from pipelines.devstack.simulate.scenarios import SCENARIOS, Scenario, get_scenario, scenario_names
from pipelines.devstack.simulate.transactions import check_spec, generate_events, make_population

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
