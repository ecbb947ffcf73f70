"""The Dagster resource injected into a real asset run, against the embedded server.

No `from __future__ import annotations`: Dagster reads the asset's annotations at definition time.
"""

import dagster as dg

from resources.lakefs import LakeFSResource


def test_asset_writes_audits_and_publishes_through_the_resource(lakefs_server, lake) -> None:
    key, secret = lakefs_server.credentials
    resource = LakeFSResource(
        endpoint=lakefs_server.endpoint, access_key_id=key, secret_access_key=secret, repository=lake.repository_id
    )

    @dg.asset
    def dataset(context: dg.AssetExecutionContext, lakefs: LakeFSResource) -> dg.MaterializeResult:
        lakefs.ensure_repository()
        wap = lakefs.wap(context.run_id).open()
        wap.write_json("features/demo/part-0.json", {"rows": 3})
        commit = wap.commit("demo")  # carries flywheel.run_id = the Dagster run id
        assert lakefs.read_json(commit, "features/demo/part-0.json") == {"rows": 3}  # audit at the commit
        published = wap.publish()
        return dg.MaterializeResult(metadata={"lakefs_commit": published, "uri": wap.uri("features/demo/")})

    result = dg.materialize([dataset], resources={"lakefs": resource})
    assert result.success
    metadata = result.asset_materializations_for_node("dataset")[0].metadata
    assert metadata["lakefs_commit"].value == lake.resolve("main")
    assert lake.list_paths("main", "features/") == ["features/demo/part-0.json"]
