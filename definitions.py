"""Builds the Dagster `Definitions` once, for the profile in FLYWHEEL_PROFILE (local or k8s)."""

from __future__ import annotations

import importlib

from dagster import Definitions, load_asset_checks_from_modules, load_assets_from_modules

from assets import ASSET_MODULES
from jobs import JOBS, SCHEDULES
from resources.profiles import build_resources
from sensors import SENSORS


def build_definitions(profile: str | None = None) -> Definitions:
    modules = [importlib.import_module(name) for name in ASSET_MODULES]
    return Definitions(
        assets=load_assets_from_modules(modules),
        asset_checks=load_asset_checks_from_modules(modules),
        jobs=JOBS,
        schedules=SCHEDULES,
        sensors=SENSORS,
        resources=build_resources(profile),
    )


defs = build_definitions()
