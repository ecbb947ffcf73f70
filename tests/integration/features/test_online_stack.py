"""The online store and the feature updater as `flywheel up` starts them: a private password in stack.env,
the updater applying the spec's topic, its metrics, and nothing left after `down`."""

from __future__ import annotations

import json
import stat
import time
import urllib.request
from pathlib import Path

import numpy as np
import psutil
import pytest
from online_world import produce

from pipelines.config import read_env_file
from pipelines.devstack.manager import Stack
from pipelines.devstack.net import free_port
from pipelines.features.aggregates import definitions, reference_values
from pipelines.features.online import connect
from pipelines.spec import load_spec
from pipelines.spec.samples import sample_events

ROOT = Path(__file__).resolve().parents[3]
SERVICES = ["kafka", "online_store", "feature_updater"]


def test_up_starts_store_and_updater_which_applies_the_topic(isolated_state: Path) -> None:
    spec = load_spec("transactions")
    stack = Stack(state_dir=isolated_state, project_root=ROOT)
    stack.up(
        services=SERVICES,
        ports={name: free_port() for name in SERVICES},
        check_java_version=False,
        topics=[(spec.topic.name, spec.topic.partitions)],
    )
    try:
        env = read_env_file(stack.env_file)
        url = env["FLYWHEEL_ONLINE_STORE_URL"]
        password_file = isolated_state / "online-store" / "password"
        assert url.startswith(f"redis://:{password_file.read_text().strip()}@127.0.0.1:")
        assert stat.S_IMODE(password_file.stat().st_mode) == 0o600
        assert all(s.state == "running" for s in stack.status())

        events = sample_events(spec, 300, seed=5, entities=20)
        produce(
            env["KAFKA_BOOTSTRAP_SERVERS"], spec.topic.name, [(b"", json.dumps(e).encode(), "event") for e in events]
        )
        store = connect(spec, url, timeout_s=2.0)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            state = store.state() if store.state().layout else None
            if state and state.counters["applied"] == len(events):
                break
            time.sleep(0.5)
        assert state is not None and state.counters["applied"] == len(events)

        entity = events[-1][spec.entity_key]
        t = events[-1][spec.timestamp] + 1
        mine = [e for e in events if e[spec.entity_key] == entity]
        want = reference_values(
            definitions(spec),
            np.array([e[spec.timestamp] for e in mine]),
            {"amount": np.array([e["amount"] for e in mine], dtype=float)},
            t,
        )
        (got,) = store.lookup([entity], [t])
        assert got == pytest.approx(want, rel=1e-12)  # numpy's reference adds pairwise, the store in ascending order

        record = next(r for r in stack.records() if r.service == "feature_updater")
        applied = f'flywheel_features_updater_events_total{{outcome="applied",spec="{spec.name}"}} 300.0'
        deadline = time.monotonic() + 15
        body = ""
        while time.monotonic() < deadline and applied not in body:  # observed every heartbeat (2 s)
            body = urllib.request.urlopen(record.url, timeout=5).read().decode()
            time.sleep(0.5)
        assert applied in body
    finally:
        pids = [r.pid for r in stack.records()]
        stack.down()
    assert not [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
