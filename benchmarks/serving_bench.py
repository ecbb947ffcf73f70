"""Serving: Flywheel serving against `mlflow models serve` of the same registered version, same load generator,
same machine, one run. Writes benchmarks/results/serving.json and .md.

    .venv/bin/python -m benchmarks.serving_bench [--duration 10] [--rate 100] [--step-duration 5] [--rounds 3]

Setup: an MLflow server and Kafka (the embedded stack's code, in a temporary directory), a redis-server online
store initialized for the spec (no history, so every lookup answers the no-history defaults), and one version of
a small TabularNet registered the way the optimization stage registers it (ONNX form, FlywheelOptimizedModel
pyfunc). Flywheel serving gets raw events and looks the aggregates up in the store for every record (and logs
every prediction to Kafka); `mlflow models serve` (one uvicorn worker, local env) gets the same records with the
aggregates already filled in (the values the store answers), as `dataframe_records`.

Both servers run side by side (one idle while the other is measured) and every measurement alternates between
them, so the shared machine's changing load hits both alike. At batch 1 and batch 32 records per request:
the maximum sustainable rate (the highest rate of a ladder answered with no failure, at least 95% of the
offered rate and p99 under 500 ms), then throughput, p50 and p99 at an equal offered load (open loop, latency from
the scheduled send): by default the highest rate both servers sustained, so the comparison is made where both
are busy but neither is overloaded (at a rate where both idle, p99 is mostly the machine's scheduling noise).
There p99 varies from run to run, so each server runs `--rounds` times alternately and the goal is judged on
the median of the per-round p99 ratios; the same is reported at about half of MLflow's maximum rate. Server CPU
per request is recorded at every step of the ladder (it falls with micro-batching as the rate rises).
Both servers get their best thread setting for a shared machine: one ONNX Runtime intra-op thread per model
call, no spin-waiting pool (MLflow's pyfunc through FLYWHEEL_ORT_THREADS=1).
Goal (issue 14): Flywheel at least 5x the throughput and at most 0.2x the p99 of MLflow's server.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import numpy as np  # noqa: E402
import orjson  # noqa: E402
import torch  # noqa: E402

from benchmarks.run_facts import run_facts  # noqa: E402
from pipelines import registry  # noqa: E402
from pipelines.devstack.manager import Stack  # noqa: E402
from pipelines.devstack.net import free_port  # noqa: E402
from pipelines.features.aggregates import NO_HISTORY  # noqa: E402
from pipelines.features.online.server import running  # noqa: E402
from pipelines.features.online.store import RedisOnlineStore  # noqa: E402
from pipelines.optimize.candidates import export_onnx  # noqa: E402
from pipelines.optimize.forms import OnnxCandidate  # noqa: E402
from pipelines.optimize.packaging import FlywheelOptimizedModel, save_candidate  # noqa: E402
from pipelines.serving.loadgen import run_load  # noqa: E402
from pipelines.spec import load_spec  # noqa: E402
from pipelines.spec.samples import sample_columns  # noqa: E402
from pipelines.training.model import TabularNet  # noqa: E402
from pipelines.training.preprocess import Preprocessor  # noqa: E402
from pipelines.training.synthetic import synthetic_table  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
SPEC = load_spec("transactions")
# Steps of at most ~1.33x from 75 up, so neither server's maximum is rounded down by much more than the other's.
RATES = (25, 50, 75, 100, 125, 150, 200, 250, 300, 400, 500, 600, 800, 1000, 1200, 1600, 2000, 2400, 3200)
MAX_P99_MS = 500.0


def trained_onnx() -> OnnxCandidate:
    table = synthetic_table(SPEC, 5000, seed=1)
    prep = Preprocessor.fit(SPEC, table)
    torch.manual_seed(1)
    net = TabularNet(prep.numeric_width, prep.cardinalities, list(SPEC.model.hidden_dims), SPEC.model.embedding_dim)
    numeric, categorical = (torch.from_numpy(a) for a in prep.transform(table))
    labels = torch.tensor(table[SPEC.label].astype(float).to_numpy(), dtype=torch.float32)
    optimizer = torch.optim.Adam(net.parameters(), lr=0.01)
    for _ in range(60):
        optimizer.zero_grad()
        torch.nn.functional.binary_cross_entropy_with_logits(net(numeric, categorical), labels).backward()
        optimizer.step()
    architecture = {
        "numeric_width": prep.numeric_width,
        "cardinalities": prep.cardinalities,
        "hidden_dims": list(SPEC.model.hidden_dims),
        "embedding_dim": SPEC.model.embedding_dim,
    }
    return OnnxCandidate(
        name="onnx-fp32", architecture=architecture, preprocessor=prep, model_bytes=export_onnx(net.eval(), prep)
    )


def register(name: str, workdir: Path, tracking_uri: str) -> str:
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment("serving-bench")
    artifacts = save_candidate(trained_onnx(), workdir / "candidate")
    with mlflow.start_run(run_name="serving bench"):
        info = mlflow.pyfunc.log_model(
            name="model", python_model=FlywheelOptimizedModel(), artifacts=artifacts, pip_requirements=["mlflow"]
        )
    version = registry.register(str(info.model_uri), name, {"flywheel.form": "onnx-fp32"}, tracking_uri)
    registry.record_decision(name, version, True, "serving benchmark", tracking_uri=tracking_uri)
    registry.promote(name, version, tracking_uri)
    return version


def raw_events(n: int) -> list[dict[str, Any]]:
    cols = sample_columns(SPEC, n, seed=7, entities=2000, label_rate=0.1)
    return [
        {k: (cols[k][i].item() if isinstance(cols[k][i], np.generic) else cols[k][i]) for k in SPEC.event_fields}
        for i in range(n)
        if True
    ]


def with_aggregates(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The model-input records MLflow's server gets: features plus the aggregates the store answers (none of
    these entities has history in the store: the no-history defaults)."""
    names = [f.name for f in SPEC.features]
    return [{**{k: e[k] for k in names}, **{a.name: NO_HISTORY[a.function] for a in SPEC.aggregates}} for e in events]


@contextmanager
def process(command: list[str], env: dict[str, str], log: Path, health: str) -> Iterator[int]:
    """The server running in a session of its own; yields its session id (its pid)."""
    with open(log, "ab") as handle:
        proc = subprocess.Popen(
            command, cwd=ROOT, env={**os.environ, **env}, stdout=handle, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{command[:4]} exited: {log.read_text()[-2000:]}")
            try:
                if httpx.get(health, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        else:
            raise RuntimeError(f"{command[:4]} did not become ready: {log.read_text()[-2000:]}")
        yield proc.pid
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def session_cpu_s(session: int) -> float:
    """User + system CPU seconds of every process of a session (MLflow's server runs uvicorn under a shell)."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        if int(fields[3]) == session:  # fields after the name: state ppid pgrp session ... utime(11) stime(12)
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def pid_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measured_load(url: str, bodies: list[bytes], rate: float, duration: float, session: int,
                  store_pid: int) -> dict[str, Any]:  # fmt: skip
    """One open-loop run with the CPU it cost per answered request: the server's (whatever else the shared
    machine runs), the online store's (redis-server, used by Flywheel only) and the load generator's (this
    process), given apart."""
    cpu, store, own = session_cpu_s(session), pid_cpu_s(store_pid), sum(os.times()[:2])
    result = run_load(url, bodies, rate, duration, timeout_s=10)
    ok = max(result.ok, 1)
    return {
        **result.summary(),
        "server_cpu_ms_per_request": round((session_cpu_s(session) - cpu) * 1000 / ok, 2),
        "online_store_cpu_ms_per_request": round((pid_cpu_s(store_pid) - store) * 1000 / ok, 2),
        "load_generator_cpu_ms_per_request": round((sum(os.times()[:2]) - own) * 1000 / ok, 2),
    }


def alternating(targets: dict[str, tuple[str, list[bytes]]], rate: float, duration: float, rounds: int,
                sessions: dict[str, int], store_pid: int) -> dict[str, Any]:  # fmt: skip
    """`rounds` runs of each server at one offered rate, alternating (F M F M ...): the p99 at a busy rate
    varies from run to run, so the ratio reported is the median of the per-round ratios."""
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in targets}
    for _ in range(rounds):
        for name, (url, bodies) in targets.items():
            runs[name].append(measured_load(url, bodies, rate, duration, sessions[name], store_pid))
    f, m = runs["flywheel"], runs["mlflow"]
    ratios = [a["p99_ms"] / max(b["p99_ms"], 1e-9) for a, b in zip(f, m, strict=True)]
    return {
        "offered_rps": rate,
        "runs": runs,
        "p99_ratios": [round(r, 3) for r in ratios],
        "p99_ratio_median": round(float(np.median(ratios)), 3),
        # each server's run with its median p99 (what the table shows)
        "median_run": {name: sorted(rs, key=lambda r: r["p99_ms"])[len(rs) // 2] for name, rs in runs.items()},
    }


def measure(targets: dict[str, tuple[str, list[bytes]]], rate: float | None, duration: float,
            step_duration: float, rounds: int, sessions: dict[str, int], store_pid: int) -> dict[str, Any]:  # fmt: skip
    """Both servers, interleaved: each measurement of one is followed by the same of the other, so a change of
    the shared machine's load between them hits both alike."""
    for url, bodies in targets.values():
        run_load(url, bodies, 50, 5)  # warm-up: connections, the store, Kafka's producer, first model calls
    out: dict[str, Any] = {name: {"steps": []} for name in targets}
    best: dict[str, dict[str, Any] | None] = dict.fromkeys(targets)
    going = set(targets)
    for offered in RATES:
        for name in [n for n in targets if n in going]:
            url, bodies = targets[name]
            step = measured_load(url, bodies, offered, step_duration, sessions[name], store_pid)
            ok = step["failed"] == 0 and step["achieved_rps"] >= 0.95 * offered and step["p99_ms"] < MAX_P99_MS
            out[name]["steps"].append({**step, "sustained": ok})
            if ok:
                best[name] = step
            else:
                going.discard(name)
        if not going:
            break
    for name, step in best.items():
        out[name]["max_sustainable_rps"] = step["offered_rps"] if step else 0
        out[name]["at_max"] = step  # with the server CPU per request at that rate
    # The goal is judged at the highest rate both sustained (MLflow's knee: both busy, neither overloaded);
    # the ratio at about half of MLflow's maximum is reported beside it (MLflow with headroom).
    equal = rate or min(st["offered_rps"] if st else RATES[0] for st in best.values())
    half = max(round(out["mlflow"]["max_sustainable_rps"] / 2), 1) if not rate else rate / 2
    out["equal"] = alternating(targets, equal, duration, rounds, sessions, store_pid)
    out["half"] = alternating(targets, half, duration, rounds, sessions, store_pid)
    for name in targets:
        out[name]["fixed"] = out["equal"]["median_run"][name]
    out["equal_rps"] = equal
    out["half_rps"] = half
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds at the equal offered load")
    parser.add_argument(
        "--rate",
        type=float,
        default=None,
        help="equal offered load, req/s (default: the highest rate both sustained)",
    )
    parser.add_argument("--step-duration", type=float, default=5.0, help="seconds per rate of the max-rate search")
    parser.add_argument("--rounds", type=int, default=3, help="alternating runs of each server per compared rate")
    args = parser.parse_args(argv)
    load_before = os.getloadavg()[0]
    name = f"serving-bench-{uuid.uuid4().hex[:6]}"
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="flywheel-serving-bench-") as tmp:
        work = Path(tmp)
        stack = Stack(state_dir=work / "state", project_root=ROOT)
        services = ["kafka", "mlflow"]
        stack.up(services=services, ports={s: free_port() for s in services}, check_java_version=False)
        try:
            from pipelines.config import read_env_file

            env = read_env_file(stack.env_file)
            uri = env["MLFLOW_TRACKING_URI"]
            version = register(name, work, uri)
            events = raw_events(3200)
            with running(work / "store", persist=False) as (store_url, store_proc):
                RedisOnlineStore(SPEC, store_url).init(SPEC.topic.name, None)
                flywheel_port, mlflow_port = free_port(), free_port()
                serving_env = {
                    "MLFLOW_TRACKING_URI": uri,
                    "KAFKA_BOOTSTRAP_SERVERS": env["KAFKA_BOOTSTRAP_SERVERS"],
                    "FLYWHEEL_ONLINE_STORE_URL": store_url,
                    "FLYWHEEL_SERVING_MODEL": name,
                    "FLYWHEEL_STATE_DIR": str(work / "state"),
                    "FLYWHEEL_SERVING_THREADS": "1",  # (the default) one intra-op thread, no spin-waiting
                }
                flywheel_cmd = [sys.executable, "-m", "pipelines.cli", "serve", "--port", str(flywheel_port)]
                mlflow_cmd = [
                    sys.executable, "-m", "mlflow", "models", "serve", "-m", f"models:/{name}/{version}",
                    "-p", str(mlflow_port), "-h", "127.0.0.1", "--env-manager", "local", "-w", "1",
                ]  # fmt: skip
                # MLflow starts `uvicorn` through bash: this virtualenv's bin must be on PATH.
                path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
                # MLflow's best setting on a shared 2-core machine: the pyfunc's ONNX Runtime session with one
                # intra-op thread and no spin-waiting pool (its default, one spinning thread per core, burns the
                # cores the server itself needs), as Flywheel's.
                mlflow_env = {"MLFLOW_TRACKING_URI": uri, "PATH": path, "FLYWHEEL_ORT_THREADS": "1"}
                with (
                    process(
                        flywheel_cmd, serving_env, work / "flywheel.log", f"http://127.0.0.1:{flywheel_port}/readyz"
                    ) as flywheel_session,
                    process(
                        mlflow_cmd, mlflow_env, work / "mlflow-serve.log", f"http://127.0.0.1:{mlflow_port}/ping"
                    ) as mlflow_session,
                ):
                    sessions = {"flywheel": flywheel_session, "mlflow": mlflow_session}
                    filled = with_aggregates(events)
                    for batch in (1, 32):
                        raw = [orjson.dumps({"records": events[i : i + batch]}) for i in range(0, len(events), batch)]
                        plain = [
                            orjson.dumps({"dataframe_records": filled[i : i + batch]})
                            for i in range(0, len(filled), batch)
                        ]
                        targets = {
                            "flywheel": (f"http://127.0.0.1:{flywheel_port}/v1/predict", raw),
                            "mlflow": (f"http://127.0.0.1:{mlflow_port}/invocations", plain),
                        }
                        row = measure(
                            targets,
                            args.rate,
                            args.duration,
                            args.step_duration,
                            args.rounds,
                            sessions,
                            store_proc.pid,
                        )
                        results[f"batch_{batch}"] = row
                        print(json.dumps({f"batch_{batch}": _ratios(row)}), flush=True)
        finally:
            stack.down()
    report = {
        "benchmark": "serving",
        "model": "TabularNet (spec default widths), onnx-fp32 form, one registered version for both servers",
        "servers": {
            "flywheel": "flywheel serve: 1 process (uvicorn, 1 worker), micro-batching (max 64 records, 2 ms wait) "
            "scored on the event loop, raw events validated against the spec, online lookups in redis-server, "
            "every prediction logged to Kafka (one message each, librdkafka producer)",
            "mlflow": "mlflow models serve --env-manager local -w 1: dataframe_records with aggregates filled in; "
            "the pyfunc's ONNX Runtime session with 1 intra-op thread, no spin-waiting (FLYWHEEL_ORT_THREADS=1)",
        },
        "offered_rps": args.rate or "the highest rate both sustained (per batch size)",
        "duration_s": args.duration,
        "rounds": args.rounds,
        "max_rate_rule": f"no failure, >= 95% of offered answered, p99 < {MAX_P99_MS:g} ms; rates {list(RATES)}",
        "results": results,
        "ratios": {k: _ratios(v) for k, v in results.items()},
        **run_facts(load_before),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "serving.json").write_text(json.dumps(report, indent=1))
    (RESULTS / "serving.md").write_text(markdown(report))
    print(markdown(report))
    return 0


def _ratios(row: dict[str, Any]) -> dict[str, float]:
    f, m = row["flywheel"], row["mlflow"]
    return {
        "max_rate_x": round(f["max_sustainable_rps"] / max(m["max_sustainable_rps"], 1e-9), 2),
        "p99_at_equal_load_x": row["equal"]["p99_ratio_median"],
        "p99_at_half_load_x": row["half"]["p99_ratio_median"],
        "throughput_at_equal_load_x": round(f["fixed"]["achieved_rps"] / max(m["fixed"]["achieved_rps"], 1e-9), 2),
        "cpu_per_request_x": round(
            f["fixed"]["server_cpu_ms_per_request"] / max(m["fixed"]["server_cpu_ms_per_request"], 1e-9), 2
        ),
    }


def _rate_text(rate: float | str) -> str:
    return f"{rate:g} requests/s" if isinstance(rate, int | float) else rate


def markdown(report: dict[str, Any]) -> str:
    rounds = report.get("rounds", 1)
    lines = [
        "# Serving: Flywheel vs `mlflow models serve` (same version, same load generator, same machine)",
        "",
        f"{report['when']} · {report['machine']} · load average {report['load_average_before']:.2f} before, "
        f"{report['load_average_after']:.2f} after · Python {report['python']} · torch {report['torch']}",
        "",
        f"Equal offered load: {_rate_text(report['offered_rps'])}, {rounds} runs of {report['duration_s']:g} s "
        "per server, alternating (open loop). The p99 goal is judged there, as the median of the per-round "
        "p99 ratios; the same ratio at about half of MLflow's maximum rate is given beside it. "
        f"Max sustainable rate: {report['max_rate_rule']}.",
        "",
        "| batch | server | equal load req/s | throughput (req/s) | p50 ms | p99 ms (median run) | failed "
        "| server CPU ms/request | online store CPU ms/request | load generator CPU ms/request "
        "| max sustainable req/s | records/s at max | server CPU ms/request at max |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for key, row in report["results"].items():
        batch = int(key.split("_")[1])
        for server in ("flywheel", "mlflow"):
            r = row[server]
            fixed = r["fixed"]
            at_max = r.get("at_max") or {}
            lines.append(
                f"| {batch} | {server} | {fixed['offered_rps']:g} | {fixed['achieved_rps']:.1f} "
                f"| {fixed['p50_ms']:.1f} | {fixed['p99_ms']:.1f} "
                f"| {fixed['failed']} | {fixed['server_cpu_ms_per_request']:.2f} "
                f"| {fixed.get('online_store_cpu_ms_per_request', 0):.2f} "
                f"| {fixed.get('load_generator_cpu_ms_per_request', 0):.2f} | {r['max_sustainable_rps']:g} "
                f"| {r['max_sustainable_rps'] * batch:g} | {at_max.get('server_cpu_ms_per_request', 0):.2f} |"
            )
    lines += ["", "| batch | max rate Flywheel/MLflow (goal >= 5) | p99 Flywheel/MLflow at the equal load, median "
              "(goal <= 0.2; per round) | p99 Flywheel/MLflow at ~50% of MLflow's max, median (per round) "
              "| server CPU per request Flywheel/MLflow |"]  # fmt: skip
    lines += ["| --- | --- | --- | --- | --- |"]
    for key, ratio in report["ratios"].items():
        row = report["results"][key]
        eq, half = row["equal"], row["half"]
        lines.append(
            f"| {key.split('_')[1]} | {ratio['max_rate_x']:g} "
            f"| {ratio['p99_at_equal_load_x']:g} at {eq['offered_rps']:g} req/s "
            f"({', '.join(map(str, eq['p99_ratios']))}) "
            f"| {ratio['p99_at_half_load_x']:g} at {half['offered_rps']:g} req/s "
            f"({', '.join(map(str, half['p99_ratios']))}) | {ratio['cpu_per_request_x']:g} |"
        )
    lines += ["", "p99 ms of each alternating run (Flywheel / MLflow):", ""]
    lines += ["| batch | rate | round | Flywheel p50 / p99 | MLflow p50 / p99 |", "| --- | --- | --- | --- | --- |"]
    for key, row in report["results"].items():
        for label in ("equal", "half"):
            runs = row[label]["runs"]
            for i, (f, m) in enumerate(zip(runs["flywheel"], runs["mlflow"], strict=True), 1):
                lines.append(
                    f"| {key.split('_')[1]} | {row[label]['offered_rps']:g} | {i} | {f['p50_ms']:.1f} / "
                    f"{f['p99_ms']:.1f} | {m['p50_ms']:.1f} / {m['p99_ms']:.1f} |"
                )
    lines += ["", "p50 / p99 ms and server CPU per request at each offered rate of the max-rate search (the two"]
    lines += ["servers measured alternately; once a server missed a rate it is not measured further):", ""]
    lines += [
        "| batch | offered req/s | Flywheel p50 / p99 | MLflow p50 / p99 | p99 Flywheel/MLflow "
        "| server CPU ms/request Flywheel / MLflow |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for key, row in report["results"].items():
        by_rate = {name: {st["offered_rps"]: st for st in row[name]["steps"]} for name in ("flywheel", "mlflow")}
        for rate in sorted(set(by_rate["flywheel"]) | set(by_rate["mlflow"])):
            f, m = by_rate["flywheel"].get(rate), by_rate["mlflow"].get(rate)
            shown = [f"{x['p50_ms']:.0f} / {x['p99_ms']:.0f}" if x else "-" for x in (f, m)]
            cpu = [f"{x['server_cpu_ms_per_request']:.2f}" if x else "-" for x in (f, m)]
            ratio = f"{f['p99_ms'] / m['p99_ms']:.2f}" if f and m and m["p99_ms"] else "-"
            lines.append(
                f"| {key.split('_')[1]} | {rate:g} | {shown[0]} | {shown[1]} | {ratio} | {cpu[0]} / {cpu[1]} |"
            )
    lines += ["", "Servers: " + "; ".join(f"{k}: {v}" for k, v in report["servers"].items())]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
