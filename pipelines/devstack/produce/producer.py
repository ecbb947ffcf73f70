"""Sending events to Kafka (or to a stream of JSON lines) fast, throttled if asked, with progress.

Events are JSON objects keyed by the spec's entity key, so every event of an entity lands on one partition
in order. The Kafka producer batches (linger, large batches), compresses (gzip: in the standard library) and
waits for all in-sync replicas (acks=all) with idempotence on, so a retried batch is not written twice.
"Produced" counts only events the broker acknowledged.

    result = produce_scenario(10_000, "drift", seed=7, malformed_rate=0.01)   # to KAFKA_BOOTSTRAP_SERVERS
    result.produced, result.malformed, result.events_per_second
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any, Protocol

from pipelines.config import kafka_bootstrap
from pipelines.devstack.produce.encode import event_key, iter_events
from pipelines.devstack.simulate.malformed import Malformer, encode_json
from pipelines.errors import FlywheelError
from pipelines.spec.model import DatasetSpec

#: What the send loop consumes: Kafka key, JSON payload, and the malformed kind (None for a valid event).
OutMessage = tuple[bytes | None, bytes, str | None]

NO_BROKER_HINT = (
    "start the embedded stack with `flywheel up` and load its settings with "
    "`set -a; . .flywheel/stack.env; set +a`, or pass --bootstrap-servers HOST:PORT"
)


class ProduceError(FlywheelError):
    """Sending stopped, or the broker did not acknowledge every event; the message gives the counts."""


@dataclass(frozen=True, slots=True)
class ProducerSettings:
    """Client settings: throughput (batching, compression) and a timeout on everything that can wait."""

    timeout_s: float = 10.0
    linger_ms: int = 20
    batch_size: int = 256 * 1024
    compression: str | None = "gzip"
    acks: str = "all"
    idempotent: bool = True
    client_id: str = "flywheel-producer"
    replication_factor: int = -1  # -1: the broker's default (1 on the embedded broker)


@dataclass(frozen=True, slots=True)
class Progress:
    sent: int
    total: int | None
    malformed: int
    elapsed_s: float

    @property
    def events_per_second(self) -> float:
        return self.sent / self.elapsed_s if self.elapsed_s > 0 else 0.0


ProgressCallback = Callable[[Progress], None]


@dataclass(slots=True)
class ProduceResult:
    """What one produce run did. `produced` counts acknowledged events (written lines with --stdout)."""

    produced: int
    malformed: int
    seconds: float
    events_per_second: float
    topic: str | None
    destination: str  # "kafka://host:port" or "stdout"
    source: str  # "simulator" or the replayed file
    scenario: str | None = None
    seed: int | None = None
    malformed_kinds: dict[str, int] = field(default_factory=dict)
    partitions: dict[int, int] = field(default_factory=dict)  # events per partition (Kafka only)
    bytes: int = 0

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["partitions"] = {str(k): v for k, v in sorted(self.partitions.items())}
        out["events_per_second"] = round(self.events_per_second, 1)
        out["seconds"] = round(self.seconds, 3)
        return out


# --- where the bytes go ---------------------------------------------------------------------------------


class Sink(Protocol):
    destination: str
    topic: str | None

    def send(self, key: bytes | None, value: bytes) -> None: ...

    def finish(self) -> tuple[int, dict[int, int]]:
        """Wait for outstanding sends; (delivered, delivered per partition). Raise if any failed."""
        ...

    def close(self) -> None: ...


class LineSink:
    """JSON lines on a binary stream (stdout): the value of each message, one per line."""

    topic: str | None = None

    def __init__(self, stream: IO[bytes] | None = None) -> None:
        self._stream = stream if stream is not None else sys.stdout.buffer
        self.destination = "stdout"
        self._written = 0

    def send(self, key: bytes | None, value: bytes) -> None:
        self._stream.write(value + b"\n")
        self._written += 1

    def finish(self) -> tuple[int, dict[int, int]]:
        self._stream.flush()
        return self._written, {}

    def close(self) -> None:
        pass


def _unreachable(bootstrap: str, timeout_s: float, exc: BaseException) -> FlywheelError:
    return FlywheelError(
        f"cannot reach Kafka at {bootstrap} within {timeout_s:g}s ({type(exc).__name__}): {NO_BROKER_HINT}"
    )


def check_compression(codec: str | None) -> None:
    """Fail before connecting when the codec's library is missing (only gzip ships with Python)."""
    if codec is None:
        return
    from kafka import codec as codecs

    available = {
        "gzip": codecs.has_gzip,
        "snappy": codecs.has_snappy,
        "lz4": codecs.has_lz4,
        "zstd": codecs.has_zstd,
    }.get(codec)
    if available is None:
        raise FlywheelError(f"unknown compression {codec!r}; use gzip, snappy, lz4, zstd or none")
    if not available():
        raise FlywheelError(
            f"compression {codec!r} needs a library that is not installed (pip install {codec}); "
            "or use --compression gzip"
        )


def _servers(bootstrap: str) -> list[str]:
    return [s.strip() for s in bootstrap.split(",") if s.strip()]


def ensure_topic(bootstrap: str, topic: str, partitions: int, settings: ProducerSettings | None = None) -> int:
    """Create `topic` with `partitions` partitions unless it exists; return its partition count."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic
    from kafka.errors import KafkaError, TopicAlreadyExistsError

    s = settings or ProducerSettings()
    timeout_ms = int(s.timeout_s * 1000)
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=_servers(bootstrap),
            client_id=s.client_id,
            request_timeout_ms=timeout_ms,
            bootstrap_timeout_ms=timeout_ms,
        )
    except KafkaError as exc:
        raise _unreachable(bootstrap, s.timeout_s, exc) from None
    try:
        if topic not in set(admin.list_topics()):
            # Another producer may create it between the listing and the request: that is fine.
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics([NewTopic(topic, partitions, s.replication_factor)], timeout_ms=timeout_ms)
        described = admin.describe_topics([topic])
        return len(described[0]["partitions"]) if described else partitions
    except KafkaError as exc:
        raise FlywheelError(
            f"cannot create or describe topic {topic!r} on Kafka at {bootstrap}: {exc}; "
            "check that the broker allows topic creation or create the topic yourself"
        ) from None
    finally:
        admin.close()


class KafkaSink:
    """A KafkaProducer that tracks acknowledgements without keeping a future per event for long."""

    _REAP_EVERY = 5_000

    def __init__(self, bootstrap: str, topic: str, settings: ProducerSettings | None = None) -> None:
        from kafka import KafkaProducer
        from kafka.errors import KafkaError

        s = settings or ProducerSettings()
        check_compression(s.compression)
        self.settings = s
        self.topic = topic
        self.bootstrap = bootstrap
        self.destination = f"kafka://{bootstrap}"
        timeout_ms = int(s.timeout_s * 1000)
        try:
            self._producer = KafkaProducer(
                bootstrap_servers=_servers(bootstrap),
                client_id=s.client_id,
                acks=s.acks,
                enable_idempotence=s.idempotent,
                linger_ms=s.linger_ms,
                batch_size=s.batch_size,
                compression_type=s.compression,
                allow_auto_create_topics=False,  # ensure_topic creates it with the spec's partitions
                bootstrap_timeout_ms=timeout_ms,
                request_timeout_ms=timeout_ms,
                max_block_ms=timeout_ms,
                delivery_timeout_ms=max(3 * timeout_ms, timeout_ms + s.linger_ms + 1000),
            )
        except KafkaError as exc:
            raise _unreachable(bootstrap, s.timeout_s, exc) from None
        except (AssertionError, ValueError, RuntimeError) as exc:  # a setting the client refuses
            raise FlywheelError(f"cannot configure the Kafka producer: {exc}") from None
        self._pending: deque[Any] = deque()
        self._by_partition: Counter[int] = Counter()
        self._failed = 0
        self._first_error: BaseException | None = None
        self._closed = False
        self._kafka_error = KafkaError  # kept at hand: send() is the hot path

    def send(self, key: bytes | None, value: bytes) -> None:
        try:
            self._pending.append(self._producer.send(self.topic, key=key, value=value))
        except self._kafka_error as exc:
            raise ProduceError(
                f"sending to topic {self.topic!r} on Kafka at {self.bootstrap} failed: {exc}; "
                "check the broker with `flywheel status` and produce again"
            ) from None
        if len(self._pending) >= self._REAP_EVERY:
            self._reap()

    def _reap(self) -> None:
        pending = self._pending
        while pending and pending[0].is_done:
            fut = pending.popleft()
            if fut.succeeded():
                self._by_partition[fut.value.partition] += 1
            else:
                self._failed += 1
                self._first_error = self._first_error or fut.exception

    def finish(self) -> tuple[int, dict[int, int]]:
        from kafka.errors import KafkaError

        try:
            self._producer.flush(timeout=self.settings.timeout_s * 3)
        except KafkaError as exc:
            self._first_error = self._first_error or exc
        self._reap()
        unacked = len(self._pending) + self._failed
        delivered = sum(self._by_partition.values())
        if unacked:
            raise ProduceError(
                f"{unacked} of {delivered + unacked} events were not acknowledged by Kafka at {self.bootstrap} "
                f"(first error: {self._first_error or 'timed out'}); check the broker with `flywheel status` "
                "and produce again"
            )
        return delivered, dict(self._by_partition)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._producer.close(timeout=self.settings.timeout_s)


# --- the send loop --------------------------------------------------------------------------------------


def send_messages(
    messages: Iterable[OutMessage],
    sink: Sink,
    *,
    total: int | None = None,
    rate: float | None = None,
    progress: ProgressCallback | None = None,
    progress_interval_s: float = 1.0,
) -> tuple[int, int, Counter[str], float, int]:
    """Send (key, value, malformed kind or None) triples; (sent, malformed, kinds, seconds, bytes).

    `rate` caps events per second against an absolute schedule, so short stalls are caught up and the
    average rate holds. Progress is reported every `progress_interval_s`, never per event.
    """
    if rate is not None and rate <= 0:
        raise FlywheelError(f"the rate must be a positive number of events per second, got {rate}")
    kinds: Counter[str] = Counter()
    sent = malformed = nbytes = 0
    t0 = time.monotonic()
    next_report = t0 + progress_interval_s
    for key, value, kind in messages:
        if rate is not None:
            due = t0 + sent / rate
            now = time.monotonic()
            if due > now:
                time.sleep(due - now)
        sink.send(key, value)
        sent += 1
        nbytes += len(value)
        if kind is not None:
            malformed += 1
            kinds[kind] += 1
        if progress is not None:
            now = time.monotonic()
            if now >= next_report:
                progress(Progress(sent, total, malformed, now - t0))
                next_report = now + progress_interval_s
    return sent, malformed, kinds, time.monotonic() - t0, nbytes


def event_messages(
    events: Iterable[Mapping[str, Any]], spec: DatasetSpec, malformer: Malformer | None = None
) -> Iterator[OutMessage]:
    """(key, JSON value, malformed kind) per event; the malformer corrupts the events it planned to."""
    for i, event in enumerate(events):
        key = event_key(event, spec)
        if malformer is None:
            yield key, encode_json(event), None
        else:
            value, kind = malformer.encode(i, event)
            yield key, value, kind


def produce_events(
    events: Iterable[Mapping[str, Any]],
    spec: DatasetSpec,
    sink: Sink,
    *,
    count: int,
    malformed_rate: float = 0.0,
    seed: int = 0,
    rate: float | None = None,
    progress: ProgressCallback | None = None,
    source: str = "simulator",
    scenario: str | None = None,
) -> ProduceResult:
    """Send `count` events through `sink`, exactly round(count * malformed_rate) of them malformed."""
    started = time.monotonic()
    try:  # the sink is closed whatever fails, a rejected malformed rate included
        malformer = Malformer(spec, count, malformed_rate, seed) if malformed_rate > 0 else None
        _sent, malformed, kinds, _, nbytes = send_messages(
            event_messages(events, spec, malformer), sink, total=count, rate=rate, progress=progress
        )
        delivered, partitions = sink.finish()
        # Until the last acknowledgement: the rate a downstream consumer can count on.
        seconds = max(time.monotonic() - started, 1e-9)
    finally:
        sink.close()
    return ProduceResult(
        produced=delivered,
        malformed=malformed,
        seconds=seconds,
        events_per_second=delivered / seconds,
        topic=sink.topic,
        destination=sink.destination,
        source=source,
        scenario=scenario,
        seed=seed,
        malformed_kinds=dict(sorted(kinds.items())),
        partitions=partitions,
        bytes=nbytes,
    )


def kafka_sink(
    spec: DatasetSpec,
    *,
    bootstrap_servers: str | None = None,
    topic: str | None = None,
    settings: ProducerSettings | None = None,
) -> KafkaSink:
    """A sink to the spec's topic (or `topic`), created with the spec's partition count if missing."""
    bootstrap = kafka_bootstrap(bootstrap_servers)
    check_compression((settings or ProducerSettings()).compression)
    name = topic or spec.topic.name
    ensure_topic(bootstrap, name, spec.topic.partitions, settings)
    return KafkaSink(bootstrap, name, settings)


def produce_scenario(
    count: int,
    scenario: str = "baseline",
    seed: int = 0,
    *,
    spec: DatasetSpec | None = None,
    start: datetime | None = None,
    malformed_rate: float = 0.0,
    rate: float | None = None,
    sink: Sink | None = None,
    bootstrap_servers: str | None = None,
    topic: str | None = None,
    settings: ProducerSettings | None = None,
    progress: ProgressCallback | None = None,
) -> ProduceResult:
    """Simulate `count` events of a scenario and send them (to Kafka unless another sink is given)."""
    from pipelines.devstack.simulate import check_spec, generate_events, get_scenario
    from pipelines.spec.loader import load_spec

    spec = spec or load_spec("transactions")
    check_spec(spec)
    name = get_scenario(scenario).name
    frame = generate_events(count, name, seed=seed, start=start)
    sink = sink or kafka_sink(spec, bootstrap_servers=bootstrap_servers, topic=topic, settings=settings)
    return _send_frame(frame, spec, sink, malformed_rate, seed, rate, progress, scenario=name)


def produce_file(
    path: str | Path,
    spec: DatasetSpec,
    *,
    limit: int | None = None,
    seed: int = 0,
    malformed_rate: float = 0.0,
    rate: float | None = None,
    sink: Sink | None = None,
    bootstrap_servers: str | None = None,
    topic: str | None = None,
    settings: ProducerSettings | None = None,
    progress: ProgressCallback | None = None,
) -> ProduceResult:
    """Replay a CSV/Parquet table in event-time order (the earliest `limit` rows if given)."""
    from pipelines.devstack.produce.replay import read_replay_frame

    frame = read_replay_frame(path, spec, limit=limit)
    sink = sink or kafka_sink(spec, bootstrap_servers=bootstrap_servers, topic=topic, settings=settings)
    return _send_frame(frame, spec, sink, malformed_rate, seed, rate, progress, source=str(path))


def _send_frame(
    frame: Any,
    spec: DatasetSpec,
    sink: Sink,
    malformed_rate: float,
    seed: int,
    rate: float | None,
    progress: ProgressCallback | None,
    **labels: Any,
) -> ProduceResult:
    """The shared tail of produce_scenario and produce_file: a table's rows, as events, into the sink."""
    return produce_events(
        iter_events(frame, spec),
        spec,
        sink,
        count=len(frame),
        malformed_rate=malformed_rate,
        seed=seed,
        rate=rate,
        progress=progress,
        **labels,
    )
