"""Rollout control against the registry: start a rollout of the challenger, advance it, promote or roll back.
Used by the `deployment` asset, the canary analysis sensor and serving's admin endpoint, so every path moves
aliases and the rollout tag the same way (serving replicas follow both by polling).

    start_rollout(name, plan, tracking_uri=uri)              # challenger alias -> a progressing rollout
    decide(name, "promote" | "rollback" | "advance", reason)  # aliases, version tags and the rollout tag
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from pipelines import registry
from pipelines.errors import FlywheelError
from pipelines.serving import rollout as rollouts
from pipelines.serving import state
from pipelines.spec.model import RolloutSpec


class RolloutError(FlywheelError):
    """A rollout action that cannot be taken now; the message says what state the model is in."""


@dataclass(frozen=True)
class Outcome:
    action: str  # started | promoted_first | advanced | promoted | rolled_back | nothing
    version: str | None
    previous: str | None
    rollout: rollouts.Rollout | None
    message: str


def start_rollout(
    name: str,
    plan: RolloutSpec,
    strategy: str | None = None,
    tracking_uri: str | None = None,
    now: float | None = None,
    version: str | None = None,
) -> Outcome:
    """Start rolling out the `challenger`. The first model ever (no champion) becomes the champion at once.
    `version`: the one the caller means (the deployment asset's); when the canary analysis already promoted it as
    the first model (its sensor can tick between the gate and `deployment`), that is the outcome, not an error."""
    now = time.time() if now is None else now
    challenger = registry.alias_version(name, registry.CHALLENGER, tracking_uri)
    if challenger is None and version is not None:
        done = state.read_rollout(name, tracking_uri)
        champion = registry.alias_version(name, registry.CHAMPION, tracking_uri)
        if done is not None and done.challenger == version == champion and done.champion is None:
            return Outcome("promoted_first", version, None, done, f"version {version} is the champion: {done.reason}")
    if challenger is None:
        raise RolloutError(f"model {name!r} has no `challenger` alias: only a version that passed the gate rolls out")
    champion = registry.alias_version(name, registry.CHAMPION, tracking_uri)
    if champion is None or champion == challenger:
        previous = registry.promote(name, challenger, tracking_uri)
        reason = "the first model: no champion to compare with, promoted directly"
        state.tag_decision(name, challenger, "promoted", reason, tracking_uri)
        first = rollouts.start(plan, None, challenger, now, strategy)
        done = rollouts.apply(first, "promote", now, reason)
        state.write_rollout(name, done, tracking_uri)
        return Outcome("promoted_first", challenger, previous, done, f"version {challenger} is the champion: {reason}")
    current = state.read_rollout(name, tracking_uri)
    if current is not None and current.active and current.challenger == challenger:
        return Outcome("nothing", challenger, champion, current, f"version {challenger} is already rolling out")
    started = rollouts.start(plan, champion, challenger, now, strategy)
    state.write_rollout(name, started, tracking_uri)
    share = f"{started.challenger_share:.0%} of traffic" if not started.shadow else "shadow traffic only"
    return Outcome(
        "started",
        challenger,
        champion,
        started,
        f"{started.strategy} rollout of version {challenger} against champion {champion} started: {share}",
    )


def decide(name: str, action: str, reason: str, tracking_uri: str | None = None, now: float | None = None) -> Outcome:
    """Apply advance | promote | rollback to the progressing rollout (aliases, version tags, rollout tag)."""
    now = time.time() if now is None else now
    current = state.read_rollout(name, tracking_uri)
    challenger = registry.alias_version(name, registry.CHALLENGER, tracking_uri)
    if current is None or not current.active or current.challenger != challenger:
        raise RolloutError(f"model {name!r} has no rollout in progress (challenger: {challenger}); nothing to {action}")
    if action not in ("advance", "promote", "rollback"):
        raise RolloutError(f"unknown rollout action {action!r}: advance, promote or rollback")
    if action == "advance" and current.last_step:
        action = "promote"
    updated = rollouts.apply(current, action, now, reason)  # type: ignore[arg-type]
    if action == "promote":
        previous = registry.promote(name, current.challenger, tracking_uri)
        state.tag_decision(name, current.challenger, "promoted", reason, tracking_uri)
        state.write_rollout(name, updated, tracking_uri)
        return Outcome("promoted", current.challenger, previous, updated, f"version {current.challenger} promoted")
    if action == "rollback":
        registry.withdraw_challenger(name, current.challenger, tracking_uri)
        state.tag_decision(name, current.challenger, "rolled_back", reason, tracking_uri)
        state.write_rollout(name, updated, tracking_uri)
        return Outcome(
            "rolled_back",
            current.challenger,
            current.champion,
            updated,
            f"version {current.challenger} rolled back: {reason}; champion stays {current.champion}",
        )
    state.write_rollout(name, updated, tracking_uri)
    return Outcome(
        "advanced",
        current.challenger,
        current.champion,
        updated,
        f"version {current.challenger} now answers {updated.challenger_share:.0%} of traffic",
    )
