"""The audit report: the lineage chain of every promoted version of a model, written as Markdown, HTML and JSON
under <records>/flywheel-records/reports/lineage/<model>/v<version>/ (beside the drift reports), for the
`audit_report` asset and anyone who wants the files without the UI.

A version counts as promoted when an alias says it serves or served (`champion`, `previous-champion`) or its
rollout tag says it was promoted (a champion replaced twice since keeps its tag, not an alias).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelines import registry
from pipelines.audit import render, trace
from pipelines.config import setting, state_dir
from pipelines.errors import FlywheelError

PROMOTED_TAG = "flywheel.rollout.decision"  # pipelines/serving/state.py DECISION_TAG; its value "promoted"
PROMOTED_ALIASES = (registry.CHAMPION, registry.PREVIOUS_CHAMPION)
FORMATS = {"md": render.markdown, "html": render.html_page}


@dataclass(frozen=True)
class WrittenReport:
    version: str
    aliases: list[str]
    decision: str | None
    md: Path
    html: Path
    json: Path


def records_root(base: str | None = None) -> Path:
    """<FLYWHEEL_RECORDS_DIR or base>/flywheel-records, a local directory (an fsspec URL falls back to the state
    dir, as the drift reports do)."""
    root = setting("FLYWHEEL_RECORDS_DIR") or base or ""
    if not root or "://" in root:
        root = str(state_dir())
    return Path(root) / "flywheel-records"


def reports_dir(base: str | None = None) -> Path:
    return records_root(base) / "reports" / "lineage"


def promoted_versions(client: Any, name: str) -> list[Any]:
    """The model's versions that were promoted, oldest first."""
    try:
        found = client.search_model_versions(f"name = '{name}'")
    except Exception as exc:
        raise FlywheelError(f"listing versions of {name!r} in MLflow failed: {str(exc)[:200]}") from exc
    promoted = [
        mv
        for mv in found
        if set(getattr(mv, "aliases", []) or []) & set(PROMOTED_ALIASES) or mv.tags.get(PROMOTED_TAG) == "promoted"
    ]
    return sorted(promoted, key=lambda mv: int(mv.version))


def write(chain: dict[str, Any], folder: Path) -> dict[str, Path]:
    """The chain as lineage.md, lineage.html and lineage.json in `folder` (each written whole, then renamed)."""
    folder.mkdir(parents=True, exist_ok=True)
    texts = {fmt: fn(chain) for fmt, fn in FORMATS.items()}
    texts["json"] = json.dumps(chain, indent=2, sort_keys=True, default=str) + "\n"
    paths = {}
    for fmt, text in texts.items():
        path = folder / f"lineage.{fmt}"
        tmp = path.with_suffix(f".{fmt}.tmp")
        tmp.write_text(text)
        tmp.rename(path)
        paths[fmt] = path
    return paths


def write_reports(sources: trace.Sources, name: str, out_dir: Path) -> list[WrittenReport]:
    """One report per promoted version of `name` under out_dir/<name>/v<version>/."""
    written = []
    for mv in promoted_versions(sources.mlflow, name):
        version = str(mv.version)
        chain = trace.trace(sources, name, version)
        paths = write(chain, out_dir / name / f"v{version}")
        written.append(
            WrittenReport(
                version=version,
                aliases=list(chain["now"]["aliases"]),
                decision=(chain["rollout"].get(PROMOTED_TAG) or chain["gate"]["decision"]),
                md=paths["md"],
                html=paths["html"],
                json=paths["json"],
            )
        )
    return written
