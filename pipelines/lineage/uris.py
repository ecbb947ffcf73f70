"""`lakefs://<repository>/<ref>/<path>` URIs: how every record names data. For lineage the ref is always a
commit id, so a URI read again later gives the same bytes."""

from __future__ import annotations

from dataclasses import dataclass

from pipelines.errors import LakeError

URI_SCHEME = "lakefs://"


@dataclass(frozen=True)
class LakeURI:
    repository: str
    ref: str
    path: str

    def __str__(self) -> str:
        return f"{URI_SCHEME}{self.repository}/{self.ref}/{self.path}"

    @classmethod
    def parse(cls, uri: str) -> LakeURI:
        if not uri.startswith(URI_SCHEME):
            raise LakeError(f"not a lakeFS URI: {uri!r} (expected lakefs://<repository>/<ref>/<path>)")
        repository, _, rest = uri[len(URI_SCHEME) :].partition("/")
        ref, _, path = rest.partition("/")
        if not repository or not ref:
            raise LakeError(f"not a lakeFS URI: {uri!r} (expected lakefs://<repository>/<ref>/<path>)")
        return cls(repository, ref, path)


def lake_uri(repository: str, ref: str, path: str = "") -> str:
    return str(LakeURI(repository, ref, path))
