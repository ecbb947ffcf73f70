"""The demo's last step: the model answering requests through its rollout, and what /v1/models and /metrics say."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import httpx
import numpy as np

from pipelines.errors import FlywheelError
from pipelines.spec.model import DatasetSpec
from pipelines.spec.samples import sample_columns

SHOWN_METRICS = ("flywheel_serving_requests_total", "flywheel_serving_rollout_state", "flywheel_serving_traffic_share")


def demo_events(spec: DatasetSpec, n: int, seed: int = 99) -> list[dict[str, Any]]:
    cols = sample_columns(spec, n, seed=seed, start_ms=int(time.time() * 1000) - n * 1000)
    return [
        {k: (cols[k][i].item() if isinstance(cols[k][i], np.generic) else cols[k][i]) for k in spec.event_fields}
        for i in range(n)
    ]


def show_serving(env: dict[str, str], spec: DatasetSpec, requests: int = 20, per_request: int = 16,
                 ready_timeout_s: float = 90.0) -> dict[str, Any]:  # fmt: skip
    url = env.get("FLYWHEEL_SERVING_URL")
    if not url:
        raise FlywheelError(
            "serving is not part of this stack (no FLYWHEEL_SERVING_URL): restart it with `flywheel up`"
        )
    deadline = time.monotonic() + ready_timeout_s  # serving polls the aliases (FLYWHEEL_SERVING_POLL_SECONDS)
    reason = ""
    while time.monotonic() < deadline:
        try:
            ready = httpx.get(f"{url}/readyz", timeout=5)
            if ready.status_code == 200:
                break
            reason = ready.json().get("reason", "")
        except httpx.HTTPError as exc:
            reason = str(exc)
        time.sleep(1)
    else:
        raise FlywheelError(f"serving at {url} did not become ready within {ready_timeout_s:.0f}s: {reason}")
    answered: Counter[str] = Counter()
    refused: Counter[str] = Counter()
    events = demo_events(spec, requests * per_request)
    with httpx.Client(timeout=30) as client:
        for i in range(requests):
            response = client.post(
                f"{url}/v1/predict", json={"records": events[i * per_request : (i + 1) * per_request]}
            )
            if response.status_code == 200:
                for p in response.json()["predictions"]:
                    answered[f"version {p['model_version']} ({p['arm']})"] += 1
            else:
                refused[f"HTTP {response.status_code}: {response.json().get('detail', '')[:200]}"] += 1
        models = client.get(f"{url}/v1/models").json()
        metrics = client.get(f"{url}/metrics").text
    if not answered:
        raise FlywheelError(f"serving at {url} answered no prediction: {dict(refused)}")
    print(f"  {sum(answered.values())} predictions from {url}/v1/predict: " + ", ".join(
        f"{n} by {who}" for who, n in answered.items()))  # fmt: skip
    if refused:
        print(f"  refused: {dict(refused)}")
    champion = (models["aliases"]["champion"] or {}).get("version")
    print(f"  {url}/v1/models: champion {champion}, rollout {models['rollout'] or 'none'}, traffic {models['traffic']}")
    print(f"  {url}/metrics:")
    for line in metrics.splitlines():
        if line.startswith(SHOWN_METRICS):
            print(f"    {line}")
    return {"url": url, "champion": champion, "answered": dict(answered), "refused": dict(refused)}
