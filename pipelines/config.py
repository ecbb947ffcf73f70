"""Environment settings shared by the CLI, the stack and the resources. One place reads os.environ."""

from __future__ import annotations

import os
from pathlib import Path

PROFILES = ("local", "k8s")


def profile() -> str:
    value = os.environ.get("FLYWHEEL_PROFILE", "local")
    if value not in PROFILES:
        from pipelines.errors import FlywheelError

        raise FlywheelError(f"FLYWHEEL_PROFILE={value!r} is not a profile; use one of {', '.join(PROFILES)}")
    return value


def project_root() -> Path:
    """The checkout root (where workspace.yaml lives); FLYWHEEL_HOME overrides."""
    if "FLYWHEEL_HOME" in os.environ:
        return Path(os.environ["FLYWHEEL_HOME"]).resolve()
    here = Path(__file__).resolve().parent.parent
    return here if (here / "workspace.yaml").exists() else Path.cwd()


def state_dir() -> Path:
    """Where the embedded stack keeps its state: `.flywheel/` under the project root (git-ignored)."""
    return Path(os.environ.get("FLYWHEEL_STATE_DIR", project_root() / ".flywheel")).resolve()


def stack_env_path() -> Path:
    return state_dir() / "stack.env"


def read_env_file(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    if not path.exists():
        return values
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        values[key.strip()] = value.strip().strip("'\"")
    return values


def setting(name: str, default: str | None = None) -> str | None:
    """The environment wins; then `.flywheel/stack.env` written by `flywheel up`; then the default."""
    if name in os.environ:
        return os.environ[name]
    return read_env_file(stack_env_path()).get(name, default)
