"""The serving process as a Dagster resource: where it answers and the admin token to ask it to reload."""

from __future__ import annotations

from dagster import ConfigurableResource
from pydantic import Field


class ServingResource(ConfigurableResource):
    """resources/profiles.py sets it from FLYWHEEL_SERVING_URL and FLYWHEEL_SERVING_ADMIN_TOKEN."""

    url: str = Field(default="", description="serving's base URL (empty: no serving process known)")
    admin_token: str = Field(default="", description="bearer token of /admin routes (empty: read .flywheel's)")

    def token(self) -> str:
        if self.admin_token:
            return self.admin_token
        from pipelines.serving.security import token_path

        path = token_path()
        return path.read_text().strip() if path.exists() else ""
