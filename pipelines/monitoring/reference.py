"""The reference of a drift check: the champion's training rows, profiled once per champion and cached.

The champion is the MLflow alias `champion` of the spec's model; its version's tags name the lakeFS repository
and commit it was trained on (keys.LAKEFS_REPOSITORY / keys.LAKEFS_COMMIT, set by the optimization stage). The
model table at that commit, train split only, is the reference; when predictions are monitored, the champion
scores (a sample of) those rows once, so score drift compares like with like. Profiles are cached on disk
(<state>/drift/reference/, one .npz per champion, commit, spec hash and settings) and in memory.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pipelines import layout, registry
from pipelines.errors import FlywheelError
from pipelines.lineage import keys
from pipelines.lineage.uris import lake_uri
from pipelines.monitoring.profile import Profile, build_profile, from_arrays, to_arrays
from pipelines.spec.loader import spec_hash
from pipelines.spec.model import DatasetSpec

if TYPE_CHECKING:
    from pipelines.lake import Lake

log = logging.getLogger(__name__)
SCORED_ROWS = 20_000  # reference rows the champion scores for score drift (a seeded sample)
_MEMORY: dict[str, Profile] = {}


@dataclass(frozen=True)
class Champion:
    model_name: str
    version: str
    repository: str
    commit: str

    @property
    def model_uri(self) -> str:
        return f"models:/{self.model_name}/{self.version}"

    @property
    def data_uri(self) -> str:
        return lake_uri(self.repository, self.commit)


def champion_of(spec: DatasetSpec, tracking_uri: str | None = None, model_name: str | None = None) -> Champion | None:
    """The serving champion of the spec's model and the data it was trained on; None before the first one."""
    name = model_name or spec.name
    version = registry.alias_version(name, registry.CHAMPION, tracking_uri)
    if version is None:
        return None
    from mlflow import MlflowClient

    tags = MlflowClient(tracking_uri=tracking_uri).get_model_version(name, version).tags
    repository, commit = tags.get(keys.LAKEFS_REPOSITORY), tags.get(keys.LAKEFS_COMMIT)
    if not repository or not commit:
        raise FlywheelError(
            f"{name} version {version} (the champion) has no {keys.LAKEFS_REPOSITORY}/{keys.LAKEFS_COMMIT} tags, so "
            "its training data is unknown: register versions through the optimization stage, which sets them"
        )
    return Champion(name, version, repository, commit)


def cache_key(champion: Champion, spec: DatasetSpec, scored: bool) -> str:
    cfg = spec.drift
    settings = f"{cfg.bins}|{cfg.ks_max_samples}|{scored}|{spec_hash(spec)}"
    digest = hashlib.sha256(f"{champion.repository}|{champion.commit}|{settings}".encode()).hexdigest()[:16]
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in champion.model_name)
    return f"{safe}-v{champion.version}-{digest}"


def default_cache_dir() -> Path:
    from pipelines.config import state_dir

    return state_dir() / "drift" / "reference"


def reference_rows(lake: Lake, spec: DatasetSpec, repository: str, commit: str):
    """The train split of the model table at an exact commit (a pandas DataFrame)."""
    from pipelines.training import data as datasets

    if repository != lake.repository_id:
        from pipelines.lake import Lake as _Lake

        lake = _Lake(replace(lake.settings, repository=repository), client=lake.client)
    location = datasets.DataLocation("lakefs", repository, commit, "")
    table = datasets.read_model_table(datasets.open_store(location, lake), spec)
    return table[table[layout.SPLIT_COLUMN] == "train"].reset_index(drop=True)


def champion_scores(champion: Champion, spec: DatasetSpec, rows) -> np.ndarray:
    """The champion's scores on a seeded sample of the reference rows (its own pyfunc and preprocessing)."""
    from pipelines.evaluate.stage import score

    if len(rows) > SCORED_ROWS:
        rows = rows.sample(n=SCORED_ROWS, random_state=0)
    return score(champion.model_uri, spec, rows)


def load_reference(
    champion: Champion, spec: DatasetSpec, lake: Lake, *, scored: bool = False, cache_dir: Path | None = None
) -> Profile:
    """The champion's reference profile: from memory, else the disk cache, else built (and cached)."""
    key = cache_key(champion, spec, scored)
    if key in _MEMORY:
        return _MEMORY[key]
    path = (cache_dir or default_cache_dir()) / f"{key}.npz"
    if path.exists():
        try:
            with np.load(path, allow_pickle=False) as arrays:
                profile = from_arrays(arrays)
            _MEMORY[key] = profile
            return profile
        except (OSError, ValueError, KeyError) as exc:  # a damaged cache file is rebuilt, never trusted
            log.warning("drift reference cache %s is unreadable (%s): rebuilding it", path, exc)
    rows = reference_rows(lake, spec, champion.repository, champion.commit)
    scores = champion_scores(champion, spec, rows) if scored else None
    profile = build_profile(rows, spec, bins=spec.drift.bins, ks_max_samples=spec.drift.ks_max_samples, scores=scores)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **to_arrays(profile))
    tmp.rename(path)
    _MEMORY[key] = profile
    log.info(
        "drift reference for %s v%s: %d train rows at %s",
        champion.model_name,
        champion.version,
        len(rows),
        champion.data_uri,
    )
    return profile
