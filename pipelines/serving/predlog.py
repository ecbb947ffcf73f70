"""Every prediction to the `predictions` Kafka topic, off the request path: a micro-batch's records go onto a
bounded queue as one entry (never waits); one sender thread serializes them and hands them to librdkafka's
producer (confluent-kafka: batching, sending and retries in C threads, outside the GIL). When the queue is full,
Kafka cannot be reached, or a send finally fails, records are dropped and counted by reason
(flywheel_serving_prediction_log_dropped), and requests go on succeeding. `close` sends what is queued and
waits (bounded) for Kafka to acknowledge it, so a clean shutdown loses no prediction.

Record (JSON, one message per prediction, key = entity key or event id), read by the drift monitor:
    {"request_id", "event_id", "entity", "model_version", "arm", "features": {model inputs incl. aggregates},
     "score", "time_ms", "event_time_ms"}
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
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
        self.maxsize = maxsize
        self.timeout_s = timeout_s
        self.retry_s = retry_s
        self.partitions = partitions
        self.sent = 0  # handed to the producer (acknowledged unless counted as send_failed later)
        self.last_error = "" if bootstrap else "no Kafka configured (KAFKA_BOOTSTRAP_SERVERS): predictions not logged"
        self._batches: deque[list[dict[str, Any]]] = deque()
        self._pending = 0  # records queued, not yet taken by the sender
        self._lock = threading.Condition()
        self._stop = False
        self._closed = False  # close() is done (or gave up on the sender): no producer may be created after it
        self._producer: Any = None
        self._next_connect = 0.0
        self._thread: threading.Thread | None = None
        self._drop_counts: dict[str, int] = {}

    # --- the request path: never blocks (one short lock per micro-batch) -------------------------------
    def offer(self, records: list[dict[str, Any]]) -> None:
        with self._lock:
            room = self.maxsize - self._pending
            taken = records if len(records) <= room else records[: max(room, 0)]
            if taken:
                self._batches.append(taken)
                self._pending += len(taken)
                self._lock.notify()
        if len(taken) < len(records):
            self._drop(QUEUE_FULL, len(records) - len(taken))

    def _drop(self, reason: str, n: int = 1) -> None:
        self.dropped.labels(reason).inc(n)
        with self._lock:
            self._drop_counts[reason] = self._drop_counts.get(reason, 0) + n

    @property
    def drops(self) -> dict[str, int]:
        with self._lock:
            return dict(self._drop_counts)

    @property
    def pending(self) -> int:
        """Records queued here or in the producer, not yet acknowledged by Kafka."""
        producer = self._producer
        return self._pending + (len(producer) if producer is not None else 0)

    # --- the sender thread ---------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="flywheel-prediction-log", daemon=True)
            self._thread.start()

    def _delivered(self, error: Any, _message: Any) -> None:
        """librdkafka's report of a record it finally failed to deliver (only failures are reported)."""
        if error is not None:
            self._drop(SEND_FAILED)
            self.last_error = f"prediction log: sending to {self.topic!r} failed: {error}"

    def _kafka_error(self, error: Any) -> None:
        """Client-level errors (all brokers down, ...): said in /v1/models; records wait in librdkafka's
        queue up to its message timeout and are counted as send_failed if they cannot go."""
        self.last_error = f"prediction log: Kafka at {self.bootstrap}: {error}"

    def _connect(self) -> Any:
        if self._producer is not None or not self.bootstrap or self._closed:
            return self._producer
        now = time.monotonic()
        if now < self._next_connect:
            return None
        self._next_connect = now + self.retry_s
        timeout_ms = int(self.timeout_s * 1000)
        try:
            from confluent_kafka import Producer

            # The topic is checked (created) first: an unreachable Kafka is found here, in seconds.
            self.partitions = ensure_topic(self.bootstrap, self.topic, self.partitions, self.timeout_s)
            if self._closed:  # close() gave up waiting meanwhile: a producer now would never be flushed or closed
                return None
            self._producer = Producer(
                {
                    "bootstrap.servers": self.bootstrap,
                    "client.id": "flywheel-serving",
                    "acks": 1,
                    "linger.ms": 20,
                    # librdkafka's own bound; a full one is counted as queue_full
                    "queue.buffering.max.messages": max(self.maxsize, 1000),
                    "socket.timeout.ms": timeout_ms,
                    "message.timeout.ms": 3 * timeout_ms,
                    "delivery.report.only.error": True,
                    "on_delivery": self._delivered,
                    "error_cb": self._kafka_error,
                }
            )
            self.last_error = ""
            log.info("prediction log: sending to topic %r on Kafka at %s", self.topic, self.bootstrap)
        except Exception as exc:  # KafkaError (unreachable, refused), or a client that cannot be configured
            kind = "Kafka" if type(exc).__module__.startswith("kafka") else type(exc).__name__
            self.last_error = (
                f"prediction log: Kafka at {self.bootstrap} is unreachable ({kind}: {exc}); dropping predictions "
                f"(counted) and retrying every {self.retry_s:.0f}s"
            )
            log.warning(self.last_error)
        return self._producer

    def _take(self) -> list[list[dict[str, Any]]] | None:
        """The queued batches (waiting up to 0.2 s for one); None once stopped and drained."""
        with self._lock:
            if not self._batches and not self._stop:
                self._lock.wait(0.2)
            if not self._batches:
                return None if self._stop else []
            batches = list(self._batches)
            self._batches.clear()
            self._pending -= sum(len(b) for b in batches)
            return batches

    def _run(self) -> None:
        dumps, option = orjson.dumps, orjson.OPT_SERIALIZE_NUMPY
        while True:
            batches = self._take()
            if batches is None:
                return
            if self._producer is not None:
                self._producer.poll(0)  # serve delivery failure reports
            if not batches:
                continue
            producer = self._connect()
            if producer is None:
                self._drop(KAFKA_UNAVAILABLE, sum(len(b) for b in batches))
                continue
            produce, topic = producer.produce, self.topic
            for batch in batches:
                for record in batch:
                    key = str(record.get("entity") or record.get("event_id") or "")
                    try:
                        produce(topic, dumps(record, option=option), key)
                    except BufferError:  # librdkafka's queue is full: let it send for a moment, then once more
                        producer.poll(0.1)
                        try:
                            produce(topic, dumps(record, option=option), key)
                        except BufferError:
                            self._drop(QUEUE_FULL)
                            continue
                    except Exception as exc:  # a closed or misconfigured client
                        self._drop(SEND_FAILED)
                        self.last_error = f"prediction log: sending to {self.topic!r} failed: {exc}"
                        continue
                    self.sent += 1

    def close(self, timeout_s: float = 5.0) -> None:
        """Send what is queued and wait (up to `timeout_s`) for Kafka to take it; what cannot go is counted."""
        with self._lock:
            self._stop = True
            self._lock.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=timeout_s)
            self._closed = True
            if self._thread.is_alive():  # the sender is stuck (e.g. connecting): what it has not taken is lost
                with self._lock:
                    stranded = self._pending
                    self._batches.clear()
                    self._pending = 0
                if stranded:
                    self._drop(SEND_FAILED, stranded)
                    log.warning("prediction log: %d predictions still queued at shutdown, not sent", stranded)
            self._thread = None
        self._closed = True
        if self._producer is not None:
            try:
                left = self._producer.flush(timeout_s)
            except Exception as exc:
                log.warning("prediction log: flushing the producer: %s", exc)
                left = 0
            if left:
                self._drop(SEND_FAILED, left)
                log.warning("prediction log: %d predictions not acknowledged by Kafka at shutdown", left)
            self._producer = None
