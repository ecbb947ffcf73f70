"""The request check's generated fast path (pipelines.spec.fastcheck.compile_object_fast_path) answers exactly
as the general check: the same values for plainly valid records, the general check's reason for the rest."""

from __future__ import annotations

from typing import Any

import pytest

from pipelines.serving.schemas import RequestError, RequestValidator
from pipelines.spec import load_spec
from pipelines.spec.samples import sample_columns

SPEC = load_spec("transactions")
VALIDATOR = RequestValidator(SPEC)
BAD_VALUES: list[Any] = [None, "", "x", 1, -1, 1.5, -1e300, float("inf"), True, [], {}, 10**30]


def general(record: Any) -> list[Any] | str:
    return VALIDATOR._checker.values_obj({**record, SPEC.label: 0} if isinstance(record, dict) else record)


def events(n: int) -> list[dict[str, Any]]:
    cols = sample_columns(SPEC, n, seed=3, entities=50, label_rate=0.1)
    return [{k: (v.item() if hasattr(v, "item") else v) for k in SPEC.event_fields for v in [cols[k][i]]}
            for i in range(n)]  # fmt: skip


def variants() -> list[Any]:
    base = events(20)
    out: list[Any] = [*base, [], "x", None]
    out += [{k: v for k, v in e.items() if k != SPEC.label} for e in base]  # sent without the label
    for name in SPEC.event_fields:
        out.append({k: v for k, v in base[0].items() if k != name})  # missing
        out += [{**base[1], name: bad} for bad in BAD_VALUES]
    out.append({**base[2], "extra": 1})
    return out


@pytest.mark.parametrize("record", variants())
def test_the_fast_path_answers_as_the_general_check(record: Any) -> None:
    assert VALIDATOR._values(record) == general(record)


def test_plainly_valid_records_take_the_fast_path() -> None:
    fallbacks: list[Any] = []
    from pipelines.spec.events import MAX_EPOCH_MS, _failed
    from pipelines.spec.fastcheck import compile_object_fast_path

    fast = compile_object_fast_path(SPEC, decided=fallbacks.append, failed=_failed, max_epoch_ms=MAX_EPOCH_MS)
    for e in events(50):
        fast(e)
    assert fallbacks == []


def test_a_bad_record_is_still_named_with_its_field() -> None:
    bad = events(3)
    bad[1] = {**bad[1], "amount": "lots"}
    with pytest.raises(RequestError) as info:
        VALIDATOR.parse(__import__("orjson").dumps({"records": bad}))
    assert info.value.status == 422 and info.value.errors[0]["record"] == 1
    assert info.value.errors[0]["field"] == "amount"
