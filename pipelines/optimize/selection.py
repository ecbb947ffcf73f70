"""Picking the candidate to register: the fastest one within the spec's accuracy budget.

Eligible: test AUC >= fp32 test AUC - optimize.max_auc_drop (fp32 itself always is).
Fastest: lowest p50 latency at batch 1 with one thread (`measure.SELECTION_LATENCY`: one request on one core,
how a model is served behind a web endpoint); ties go to the smaller file on disk, then to the order of
candidates.ALL_FORMS (plainer forms first).
The Pareto front (latency vs AUC over every candidate, eligible or not) is reported, not used to pick: the
chosen candidate is always on the front of the eligible ones.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pipelines.errors import FlywheelError
from pipelines.optimize.candidates import ALL_FORMS, REFERENCE
from pipelines.optimize.measure import SELECTION_LATENCY

Row = Mapping[str, float]


@dataclass(frozen=True)
class Selection:
    chosen: str
    reference_auc: float
    auc_floor: float  # the lowest test AUC a candidate may have to be eligible
    eligible: list[str]
    pareto: list[str]
    reason: str  # one sentence for tags and reports


def pareto_front(rows: Mapping[str, Row], latency: str = SELECTION_LATENCY, accuracy: str = "auc") -> list[str]:
    """Candidates no other candidate beats on both axes (at least as fast and as accurate, better on one)."""

    def dominates(a: Row, b: Row) -> bool:
        no_worse = a[latency] <= b[latency] and a[accuracy] >= b[accuracy]
        return no_worse and (a[latency] < b[latency] or a[accuracy] > b[accuracy])

    usable = {n: r for n, r in rows.items() if math.isfinite(r[latency]) and math.isfinite(r[accuracy])}
    front = [n for n, r in usable.items() if not any(dominates(o, r) for m, o in usable.items() if m != n)]
    return sorted(front, key=lambda n: (usable[n][latency], _order(n)))


def select(
    rows: Mapping[str, Row],
    max_auc_drop: float,
    selectable: Sequence[str] | None = None,
    latency: str = SELECTION_LATENCY,
    max_ece: float | None = None,
) -> Selection:
    """The fastest eligible candidate among `selectable` (default: all rows; the fp32 row must be present).
    Eligible: test AUC within `max_auc_drop` of fp32 and, with `max_ece`, calibrated within the gate's bound (a
    faster form the gate would reject on calibration is not worth picking over one it accepts)."""
    if REFERENCE not in rows:
        raise FlywheelError("selection needs the fp32 candidate's measurements: it is the accuracy reference")
    reference_auc = rows[REFERENCE]["auc"]
    if not math.isfinite(reference_auc):
        raise FlywheelError(
            "the fp32 model's test AUC is undefined (the test split holds one class), so the accuracy budget "
            "cannot be judged: optimize on a dataset version whose test split has both labels"
        )
    floor = reference_auc - max_auc_drop
    names = [n for n in (selectable if selectable is not None else rows) if n in rows]
    eligible = [
        n
        for n in names
        if n == REFERENCE or (rows[n]["auc"] >= floor and (max_ece is None or rows[n].get("ece", 0.0) <= max_ece))
    ]
    if not eligible:
        raise FlywheelError(
            f"no candidate of {names} keeps test AUC >= {floor:.4f} (fp32 {reference_auc:.4f} - max_auc_drop "
            f"{max_auc_drop:g}): add fp32 to optimize.candidates or raise optimize.max_auc_drop"
        )
    chosen = min(eligible, key=lambda n: (_finite(rows[n][latency]), rows[n].get("size_bytes", 0), _order(n)))
    row = rows[chosen]
    reason = (
        f"{chosen}: fastest within the budget (p50 {row[latency]:.3f} ms at batch 1, one thread; test AUC "
        f"{row['auc']:.4f} >= {floor:.4f} = fp32 {reference_auc:.4f} - {max_auc_drop:g})"
    )
    return Selection(chosen, reference_auc, floor, eligible, pareto_front(rows, latency), reason)


def _finite(value: float) -> float:
    return value if math.isfinite(value) else math.inf


def _order(name: str) -> int:
    return ALL_FORMS.index(name) if name in ALL_FORMS else len(ALL_FORMS)
