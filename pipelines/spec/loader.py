"""Loading a spec from YAML with errors that name the file, the field and the reason."""

from __future__ import annotations

import hashlib
import json
import os
from functools import lru_cache
from pathlib import Path

import yaml
from pydantic import ValidationError

from pipelines.config import setting
from pipelines.errors import SpecError
from pipelines.spec.model import DatasetSpec

BUILTIN_DIR = Path(__file__).parent / "builtin"
DEFAULT_SPEC = "transactions"


def builtin_specs() -> list[str]:
    return sorted(p.stem for p in BUILTIN_DIR.glob("*.yaml"))


def resolve_spec_path(ref: str | os.PathLike[str] | None = None) -> Path:
    """A spec reference is a path to a YAML file or the name of a built-in spec.

    With no reference, `FLYWHEEL_SPEC` decides, then the built-in transactions spec.
    """
    ref = ref if ref is not None else setting("FLYWHEEL_SPEC") or DEFAULT_SPEC
    text = os.fspath(ref)
    if text in builtin_specs():
        return BUILTIN_DIR / f"{text}.yaml"
    path = Path(text).expanduser()
    if not path.is_file():
        raise SpecError(
            f"spec {text!r} is neither a readable file nor a built-in spec ({', '.join(builtin_specs())}); "
            "pass a path to a YAML spec or set FLYWHEEL_SPEC"
        )
    return path


def spec_reference(ref: str | os.PathLike[str] | None = None) -> str:
    """The spec as another process should name it: a built-in name, or the YAML path (which must then exist
    there too, e.g. in the training image)."""
    path = resolve_spec_path(ref)
    return path.stem if path.parent == BUILTIN_DIR else str(path)


def _format_errors(path: Path, exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        lines.append(f"{path}: field '{loc}': {err['msg']}")
    return "invalid dataset spec\n  " + "\n  ".join(lines)


def parse_spec(data: object, path: Path) -> DatasetSpec:
    if not isinstance(data, dict):
        raise SpecError(f"{path}: a spec must be a YAML mapping at the top level, got {type(data).__name__}")
    try:
        return DatasetSpec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(_format_errors(path, exc)) from None


def load_spec(ref: str | os.PathLike[str] | None = None) -> DatasetSpec:
    path = resolve_spec_path(ref)
    return _load_cached(str(path.resolve()), path.stat().st_mtime_ns)


@lru_cache(maxsize=32)
def _load_cached(path: str, _mtime: int) -> DatasetSpec:
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        raise SpecError(f"{p}: not valid YAML: {exc}") from None
    return parse_spec(data, p)


def spec_hash(spec: DatasetSpec) -> str:
    """A stable content hash: recorded in commits and runs to say exactly which spec made the data."""
    canonical = json.dumps(spec.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]
