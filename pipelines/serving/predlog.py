"""Every prediction to the `predictions` Kafka topic, off the request path: a request only puts its records on a
bounded queue (never waits); one thread sends them. When the queue is full or Kafka cannot take them, records
are dropped and counted by reason (flywheel_serving_prediction_log_dropped), and requests go on succeeding.

Record (JSON, key = entity key or event id), read by the drift monitor:
    {"request_id", "event_id", "entity", "model_version", "arm", "features": {model inputs incl. aggregates},
     "score", "time_ms", "event_time_ms"}
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
import zlib
from typing import Any

import orjson

log = logging.getLogger(__name__)

QUEUE_FULL = "queue_full"
KAFKA_UNAVAILABLE = "kafka_unavailable"
SEND_FAILED = "send_failed"


def ensure_topic(bootstrap: str, topic: str, partitions: int, timeout_s: float) -> int:
    """Create the topic unless it exists; its partition count. Raises KafkaError when Kafka cannot answer."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    timeout_ms = int(timeout_s * 1000)
    admin = KafkaAdminClient(
        bootstrap_servers=[s.strip() for s in bootstrap.split(",") if s.strip()],
        client_id="flywheel-serving",
        request_timeout_ms=timeout_ms,
        bootstrap_timeout_ms=timeout_ms,
    )
    try:
        if topic not in set(admin.list_topics()):
            with contextlib.suppress(TopicAlreadyExistsError):  # another replica created it meanwhile
                admin.create_topics([NewTopic(topic, partitions, 1)], timeout_ms=timeout_ms)
        described = admin.describe_topics([topic])
        return len(described[0]["partitions"]) if described and described[0]["partitions"] else partitions
    finally:
        admin.close()


class PredictionLog:
    def __init__(
        self,
        bootstrap: str | None,
        topic: str,
        dropped: Any,  # the catalog's flywheel_serving_prediction_log_dropped counter (label: reason)
        maxsize: int = 10_000,
        timeout_s: float = 5.0,
        retry_s: float = 5.0,
        partitions: int = 3,
    ) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.dropped = dropped
        self.timeout_s = timeout_s
        self.retry_s = retry_s
        self.partitions = partitions
        self.sent = 0
        self.last_error = "" if bootstrap else "no Kafka configured (KAFKA_BOOTSTRAP_SERVERS): predictions not logged"
        self._queue: queue.Queue[tuple[bytes, bytes]] = queue.Queue(maxsize=maxsize)
        self._stop = threading.Event()
        self._producer: Any = None
        self._next_connect = 0.0
        self._thread: threading.Thread | None = None
        self._drop_counts: dict[str, int] = {}

    # --- the request path: never blocks ----------------------------------------------------------------
    def offer(self, records: list[dict[str, Any]]) -> None:
        put = self._queue.put_nowait
        for record in records:
            key = str(record.get("entity") or record.get("event_id") or "").encode()
            try:
                put((key, orjson.dumps(record, option=orjson.OPT_SERIALIZE_NUMPY)))
            except queue.Full:
                self._drop(QUEUE_FULL)

    def _drop(self, reason: str, n: int = 1) -> None:
        self.dropped.labels(reason).inc(n)
        self._drop_counts[reason] = self._drop_counts.get(reason, 0) + n

    @property
    def drops(self) -> dict[str, int]:
        return dict(self._drop_counts)

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    # --- the sender thread ---------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="flywheel-prediction-log", daemon=True)
            self._thread.start()

    def _connect(self) -> Any:
        if self._producer is not None or not self.bootstrap:
            return self._producer
        now = time.monotonic()
        if now < self._next_connect:
            return None
        self._next_connect = now + self.retry_s
        from kafka import KafkaProducer
        from kafka.errors import KafkaError

        timeout_ms = int(self.timeout_s * 1000)
        try:
            self.partitions = ensure_topic(self.bootstrap, self.topic, self.partitions, self.timeout_s)
            self._producer = KafkaProducer(
                bootstrap_servers=[s.strip() for s in self.bootstrap.split(",") if s.strip()],
                client_id="flywheel-serving",
                acks=1,
                linger_ms=20,
                bootstrap_timeout_ms=timeout_ms,
                request_timeout_ms=timeout_ms,
                max_block_ms=timeout_ms,
                delivery_timeout_ms=3 * timeout_ms,
            )
            self.last_error = ""
            log.info("prediction log: sending to topic %r on Kafka at %s", self.topic, self.bootstrap)
        except Exception as exc:  # KafkaError (unreachable, refused), or a client that cannot be configured
            kind = "Kafka" if isinstance(exc, KafkaError) else type(exc).__name__
            self.last_error = (
                f"prediction log: Kafka at {self.bootstrap} is unreachable ({kind}: {exc}); dropping predictions "
                f"(counted) and retrying every {self.retry_s:.0f}s"
            )
            log.warning(self.last_error)
        return self._producer

    def _failed(self, exc: BaseException) -> None:
        self._drop(SEND_FAILED)
        self.last_error = f"prediction log: sending to {self.topic!r} failed: {exc}"

    def _run(self) -> None:
        while not self._stop.is_set() or not self._queue.empty():
            try:
                first = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            batch = [first]
            while len(batch) < 5000:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            producer = self._connect()
            if producer is None:
                self._drop(KAFKA_UNAVAILABLE, len(batch))
                continue
            partitions = max(self.partitions, 1)
            for key, value in batch:
                try:
                    # The partition from a C hash of the key: the same key always lands in the same partition,
                    # and kafka-python's pure-Python murmur2 partitioner (a third of its send cost) is skipped.
                    partition = zlib.crc32(key) % partitions
                    producer.send(self.topic, key=key, value=value, partition=partition).add_errback(self._failed)
                    self.sent += 1
                except Exception as exc:  # the buffer is full for max_block_ms, or the client is closed
                    self._failed(exc)

    def close(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout_s)
            self._thread = None
        if self._producer is not None:
            try:
                self._producer.flush(timeout=timeout_s)
                self._producer.close(timeout=timeout_s)
            except Exception as exc:
                log.warning("prediction log: closing the producer: %s", exc)
            self._producer = None
