"""Environment settings shared by the CLI, the stack, the profiles and the stages: the one place that reads
Flywheel's settings (the environment, then `.flywheel/stack.env`), with one parser for numbers.

Not settings, so read where they are consumed: the contract a launcher sets up for its process (torchrun's
RANK/WORLD_SIZE/MASTER_*, Dagster Pipes' variables, JAVA_HOME for the JVM) and the embedded servers' own
bootstrap (lakeFS credentials, port overrides in `flywheel up`)."""

from __future__ import annotations

import os
from collections.abc import Mapping
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


def load_stack_env() -> list[str]:
    """Export `.flywheel/stack.env` (written by `flywheel up`) into this process's environment, never overriding
    a variable already set; returns the names it set. The local profile calls it once, so `dagster.EnvVar`
    and every later `setting()` see the embedded stack's endpoints and credentials."""
    added = []
    for key, value in read_env_file(stack_env_path()).items():
        if key not in os.environ:
            os.environ[key] = value
            added.append(key)
    return added


def kafka_bootstrap(explicit: str | None = None) -> str:
    """Where the Kafka broker is: the explicit value, else KAFKA_BOOTSTRAP_SERVERS (environment, then
    stack.env); the one resolution used by the producer, ingestion, the resources and the sensors."""
    value = (explicit or setting("KAFKA_BOOTSTRAP_SERVERS") or "").strip()
    if not value:
        from pipelines.errors import FlywheelError

        raise FlywheelError(
            "no Kafka broker configured: run `flywheel up` (local profile) or set KAFKA_BOOTSTRAP_SERVERS"
        )
    return value


def float_setting(
    name: str,
    *,
    default: float,
    minimum: float | None = None,
    positive: bool = False,
    environ: Mapping[str, str] | None = None,
) -> float:
    """A numeric setting (environment, then stack.env; or `environ` when given): the one parser, so every
    bad value reads the same."""
    from pipelines.errors import FlywheelError

    raw = setting(name) if environ is None else environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    too_small = (minimum is not None and value < minimum) or (positive and not value > 0)
    if value != value or too_small or value in (float("inf"), float("-inf")):
        bound = "a positive number" if positive else f"a number >= {minimum:g}" if minimum is not None else "a number"
        raise FlywheelError(f"{name}={raw!r} is not {bound}: fix or unset it (default {default:g})")
    return value


def int_setting(
    name: str, *, default: int, minimum: int | None = None, environ: Mapping[str, str] | None = None
) -> int:
    """A whole-number setting (environment, then stack.env; or `environ`), with the same one-sentence error."""
    from pipelines.errors import FlywheelError

    raw = setting(name) if environ is None else environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        value = None
    if value is None or (minimum is not None and value < minimum):
        bound = f"a whole number >= {minimum}" if minimum is not None else "a whole number"
        raise FlywheelError(f"{name}={raw!r} is not {bound}: fix or unset it (default {default})")
    return value
