"""The predict request: `{"records": [raw event, ...]}` checked against the spec, with answers that name the
record and the field. The same checks as ingestion (pipelines.spec.events), except that the label is not
asked for: a request is scored before its label exists (one that is sent is ignored).

    validator = RequestValidator(spec, max_records=256, max_body_bytes=1 << 20)
    records = validator.parse(body)        # raises RequestError(status 400/413/422, detail)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from pipelines.spec.events import MAX_EPOCH_MS, EventChecker, _failed, describe
from pipelines.spec.fastcheck import compile_object_fast_path
from pipelines.spec.model import DatasetSpec

MAX_ERRORS_SHOWN = 20


class RequestError(Exception):
    """A request the service refuses: `status` (4xx) and a JSON-able `detail` naming what to fix."""

    def __init__(self, status: int, message: str, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors or []

    def body(self) -> dict[str, Any]:
        return {"detail": self.message, "errors": self.errors}


@dataclass(frozen=True, slots=True)
class ServingRecord:
    event_id: str
    entity: str  # the entity key (the event id where the spec's key is empty)
    event_time_ms: int
    features: dict[str, Any]  # the spec's features, normalized (aggregates are added at scoring time)


class RequestValidator:
    def __init__(self, spec: DatasetSpec, max_records: int = 256, max_body_bytes: int = 1 << 20) -> None:
        self.spec = spec
        self.max_records = max_records
        self.max_body_bytes = max_body_bytes
        self._checker = EventChecker(spec)
        label = spec.label

        def general(record: Any) -> list[Any] | str:
            # The label is not known when scoring; the checker wants one (one that is sent is ignored).
            return self._checker.values_obj({**record, label: 0} if isinstance(record, dict) else record)

        # Generated straight-line checks for plainly valid records (pipelines.spec.fastcheck, as in ingestion);
        # anything else gets the general check and its reason. A third of the CPU of a 32-record request was
        # the general check's per-field calls.
        self._values = compile_object_fast_path(spec, decided=general, failed=_failed, max_epoch_ms=MAX_EPOCH_MS)
        self._fields = spec.event_fields
        self._feature_names = [f.name for f in spec.features]
        # A spec without an entity key: every event is its own case, keyed (and routed) by its event id.
        self._has_key = spec.entity_key is not None
        # Longest names first, so a reason about "amount_usd" is not read as one about "amount".
        self._by_length = sorted(self._fields, key=len, reverse=True)

    def check_size(self, content_length: str | None) -> None:
        if content_length is None:
            return
        try:
            size = int(content_length)
        except ValueError:
            raise RequestError(400, f"Content-Length {content_length[:40]!r} is not a number") from None
        self._too_large(size)

    def _too_large(self, size: int) -> None:
        if size > self.max_body_bytes:
            raise RequestError(
                413, f"the body has {size} bytes, more than the limit of {self.max_body_bytes}: send fewer records"
            )

    def parse(self, body: bytes) -> list[ServingRecord]:
        self._too_large(len(body))
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise RequestError(400, f"the body is not valid JSON: {exc}") from None
        if not isinstance(doc, dict) or "records" not in doc:
            raise RequestError(422, 'the body must be a JSON object {"records": [event, ...]}')
        records = doc["records"]
        if not isinstance(records, list):
            raise RequestError(422, f'"records" must be a list of events, got {describe(records)}')
        if not records:
            raise RequestError(422, '"records" is empty: send at least one event')
        if len(records) > self.max_records:
            raise RequestError(
                413, f"{len(records)} records in one request, more than the limit of {self.max_records}: split it"
            )
        parsed: list[ServingRecord] = []
        errors: list[dict[str, Any]] = []
        check = self._values
        for index, record in enumerate(records):
            values = check(record)
            if isinstance(values, str):
                if len(errors) < MAX_ERRORS_SHOWN:
                    errors.append({"record": index, "field": self._field_of(values), "reason": values})
                continue
            if self._has_key:
                event_id, key, ts, rest = values[0], values[1], values[2], values[4:]
            else:
                event_id, ts, rest = values[0], values[1], values[3:]
                key = event_id
            features = dict(zip(self._feature_names, rest, strict=True))
            parsed.append(ServingRecord(event_id, key, ts, features))
        if errors:
            first = errors[0]
            where = f"record {first['record']}" + (f", field {first['field']!r}" if first["field"] else "")
            more = f" (and {len(records) - len(parsed) - 1} more records)" if len(records) - len(parsed) > 1 else ""
            raise RequestError(422, f"{where}: {first['reason']}{more}", errors)
        return parsed

    def _field_of(self, reason: str) -> str | None:
        for name in self._by_length:
            if reason.startswith((name + " ", name + ":", name + "=")):
                return name
        return None


def openapi_body(spec: DatasetSpec, max_records: int) -> dict[str, Any]:
    """The request body's JSON schema for the OpenAPI document (fuzzers and clients read it)."""
    props: dict[str, Any] = {
        spec.event_id: {"type": "string", "minLength": 1},
        spec.timestamp: {"type": ["integer", "string"], "description": "epoch ms or ISO 8601"},
    }
    if spec.entity_key is not None:
        props[spec.entity_key] = {"type": ["string", "integer"]}
    for f in spec.features:
        if f.type == "numeric":
            schema: dict[str, Any] = {"type": "integer" if f.integer else "number"}
            if f.min is not None:
                schema["minimum"] = f.min
            if f.max is not None:
                schema["maximum"] = f.max
        elif f.type == "categorical":
            schema = {"type": "string", "enum": list(f.values)}
        else:
            schema = {"type": "boolean"}
        if f.nullable:
            schema = {"anyOf": [schema, {"type": "null"}]}
        props[f.name] = schema
    required = [spec.event_id, *([spec.entity_key] if spec.entity_key else []), spec.timestamp]
    required += [f.name for f in spec.features]
    event = {"type": "object", "properties": props, "required": required}
    return {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["records"],
                    "properties": {
                        "records": {"type": "array", "items": event, "minItems": 1, "maxItems": max_records}
                    },
                }
            }
        },
    }
