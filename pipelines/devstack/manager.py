"""`flywheel up | down | status`: the lifecycle of the embedded stack."""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from pipelines import config
from pipelines.devstack import net, process
from pipelines.devstack.services import SERVICES, Context, Service, port_env_var, private_dir
from pipelines.errors import StackError
from pipelines.spark import check_java


@dataclass
class StackStatus:
    service: str
    title: str
    state: str  # running | not responding | stopped
    pid: int | None
    url: str
    note: str

    def to_json(self) -> dict:
        return self.__dict__.copy()


class Stack:
    def __init__(
        self, state_dir: Path | None = None, project_root: Path | None = None, host: str = "127.0.0.1"
    ) -> None:
        self.state_dir = Path(state_dir or config.state_dir()).resolve()
        self.project_root = Path(project_root or config.project_root()).resolve()
        self.host = host

    # --- state files ---------------------------------------------------------------------------------
    @property
    def state_file(self) -> Path:
        return self.state_dir / "stack.json"

    @property
    def env_file(self) -> Path:
        return self.state_dir / "stack.env"

    def records(self) -> list[process.ProcessRecord]:
        if not self.state_file.exists():
            return []
        try:
            data = json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return []
        return [process.ProcessRecord(**item) for item in data.get("processes", [])]

    def _write_state(self, records: list[process.ProcessRecord]) -> None:
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({"processes": [r.to_json() for r in records]}, indent=2))
        os.replace(tmp, self.state_file)

    def _write_env(self, exports: dict[str, str]) -> None:
        lines = ["# Written by `flywheel up`. Load with: set -a; . .flywheel/stack.env; set +a"]
        lines += [f"{k}={v}" for k, v in exports.items()]
        tmp = self.env_file.with_suffix(".tmp")
        tmp.unlink(missing_ok=True)
        # Created 0600 from the start: it carries the lakeFS secret, never readable by others even briefly.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write("\n".join(lines) + "\n")
        os.replace(tmp, self.env_file)

    @contextmanager
    def _lock(self) -> Iterator[None]:
        private_dir(self.state_dir)
        with open(self.state_dir / "stack.lock", "w") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise StackError("another `flywheel up` or `down` is running on this state directory") from None
            yield

    # --- lifecycle -----------------------------------------------------------------------------------
    def resolve_ports(self, overrides: dict[str, int | None], names: list[str]) -> dict[str, int]:
        ports = {}
        for name in names:
            service = SERVICES[name]
            value = overrides.get(name) or os.environ.get(port_env_var(name)) or service.default_port
            try:
                ports[name] = int(value)
            except ValueError:
                raise StackError(f"{port_env_var(name)}={value!r} is not a port number") from None
        return ports

    def up(
        self,
        *,
        with_dagster: bool = False,
        ports: dict[str, int | None] | None = None,
        services: list[str] | None = None,
        check_java_version: bool = True,
        topics: list[tuple[str, int]] | None = None,
    ) -> list[StackStatus]:
        names = services or [n for n, s in SERVICES.items() if (not s.optional or with_dagster) and s.wanted()]
        unknown = sorted(set(names) - set(SERVICES))
        if unknown:
            raise StackError(f"unknown services {unknown}; choose from {sorted(SERVICES)}")
        with self._lock():
            running = [r for r in self.records() if r.alive()]
            if running:
                raise StackError(
                    f"the Flywheel stack is already running ({', '.join(r.service for r in running)}) under "
                    f"{self.state_dir}; see `flywheel status`, or stop it with `flywheel down`"
                )
            if check_java_version:
                check_java()
            resolved = self.resolve_ports(ports or {}, names)
            for name, port in resolved.items():
                if net.port_in_use(self.host, port):
                    raise StackError(
                        f"port {port} for {SERVICES[name].title} is already in use by another program; "
                        f"free it or pick another port with --{name}-port or {port_env_var(name)}"
                    )
            ctx = Context(self.state_dir, self.project_root, self.host, resolved)
            return self._start(ctx, [SERVICES[n] for n in names], topics or [])

    def _start(self, ctx: Context, services: list[Service], topics: list[tuple[str, int]]) -> list[StackStatus]:
        logs = private_dir(self.state_dir / "logs")
        exports: dict[str, str] = {"FLYWHEEL_STATE_DIR": str(self.state_dir)}
        records: list[process.ProcessRecord] = []
        base_env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        try:
            # Start everything first, then wait: the slow servers (MLflow, Dagster) boot side by side.
            for service in services:
                if service.name == "dagster":
                    continue  # Dagster loads the code location, which reads stack.env: start it last
                _, record = process.spawn(
                    service.name,
                    service.command(ctx),
                    {**base_env, **service.env(ctx)},
                    logs / f"{service.name}.log",
                    self.project_root,
                    ctx.port(service.name),
                    service.url(ctx),
                )
                records.append(record)
                self._write_state(records)
            for service, record in zip([s for s in services if s.name != "dagster"], records, strict=True):
                self._wait_ready(ctx, service, record)
                exports.update(service.exports(ctx))
            self._write_env(exports)
            if topics and "kafka" in ctx.ports:
                self._create_topics(exports["KAFKA_BOOTSTRAP_SERVERS"], topics)
            dagster = next((s for s in services if s.name == "dagster"), None)
            if dagster is not None:
                _, record = process.spawn(
                    dagster.name,
                    dagster.command(ctx),
                    {**base_env, **exports, **dagster.env(ctx)},
                    logs / "dagster.log",
                    self.project_root,
                    ctx.port("dagster"),
                    dagster.url(ctx),
                )
                records.append(record)
                self._write_state(records)
                self._wait_ready(ctx, dagster, record)
                exports.update(dagster.exports(ctx))
                self._write_env(exports)
        except BaseException:
            for record in reversed(records):
                process.stop(record)
            self.state_file.unlink(missing_ok=True)
            self.env_file.unlink(missing_ok=True)
            raise
        return self.status()

    def _wait_ready(self, ctx: Context, service: Service, record: process.ProcessRecord) -> None:
        started = time.monotonic()
        if net.wait_until(lambda: service.ready(ctx), service.startup_timeout_s, alive=record.alive):
            return
        waited = time.monotonic() - started
        why = "exited" if not record.alive() else f"did not answer within {waited:.0f}s"
        raise StackError(
            f"{service.title} {why} on port {ctx.port(service.name)}; its log {record.log} ends with:\n"
            + process.tail(record.log)
        )

    def _create_topics(self, bootstrap: str, topics: list[tuple[str, int]]) -> None:
        """The same helper `flywheel produce` uses: bounded waits, and one sentence when Kafka fails."""
        from pipelines.devstack.produce.producer import ProducerSettings, ensure_topic

        settings = ProducerSettings(timeout_s=15.0, client_id="flywheel-up")
        for name, partitions in topics:
            ensure_topic(bootstrap, name, partitions, settings)

    def down(self) -> list[str]:
        with self._lock():
            stopped = [r.service for r in reversed(self.records()) if process.stop(r)]
            self.state_file.unlink(missing_ok=True)
            self.env_file.unlink(missing_ok=True)
            return stopped

    def status(self) -> list[StackStatus]:
        out = []
        for record in self.records():
            service = SERVICES.get(record.service)
            title = service.title if service else record.service
            if not record.alive():
                state = "stopped"
            elif service is None or service.ready(
                Context(self.state_dir, self.project_root, self.host, {record.service: record.port})
            ):
                state = "running"
            else:
                state = "not responding"
            out.append(
                StackStatus(
                    record.service,
                    title,
                    state,
                    record.pid if record.alive() else None,
                    record.url,
                    service.note if service else "",
                )
            )
        return out
