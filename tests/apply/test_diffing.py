"""Dry-run diffs: readable, server fields stripped, ignoreDifferences honoured, no write made."""

from __future__ import annotations

import uuid

import pytest

from fleet import apply, plan
from fleet.apply.diffing import render_diff, strip_server_fields
from fleet.reconcile.diffing import diff
from fleet.reconcile.syncing import AppSync, sync
from fleet.types import ObjectKey, RenderedSet


def test_strip_and_render_are_pure() -> None:
    live = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "status": {"x": 1},
        "metadata": {
            "name": "c",
            "uid": "u",
            "resourceVersion": "3",
            "managedFields": [],
            "annotations": {"fleet.dev/applied-digest": "sha256:1"},
        },
        "data": {"a": "1"},
    }
    stripped = strip_server_fields(live)
    assert stripped == {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c"},
        "data": {"a": "1"},
    }
    key = ObjectKey("", "ConfigMap", "ns", "c")
    changed = render_diff(key, stripped, {**stripped, "data": {"a": "2"}})
    assert changed.action is apply.DiffAction.UPDATE
    assert "-  a: '1'" in changed.text and "+  a: '2'" in changed.text
    assert render_diff(key, stripped, stripped).action is apply.DiffAction.NONE


@pytest.mark.anyio
async def test_diff_against_the_cluster(cluster: apply.Cluster) -> None:
    namespace = f"diff-{uuid.uuid4().hex[:8]}"
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}

    def cm(name: str, **data: str) -> dict[str, object]:
        return {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": name},
            "data": dict(data),
        }

    app = AppSync(
        name=f"app-{namespace}",
        namespace=namespace,
        ignore=(plan.IgnoreRule(kind="ConfigMap", pointers=("/data/ignored",)),),
    )
    await sync(cluster, app, RenderedSet.of([ns, cm("a", x="1", ignored="1"), cm("gone")]))
    calls = cluster.calls.copy()
    diffs, prunes = await diff(
        cluster, app, RenderedSet.of([ns, cm("a", x="2", ignored="2"), cm("new", y="1")])
    )
    by_name = {d.key.name: d for d in diffs}
    assert by_name[namespace].action is apply.DiffAction.NONE
    assert by_name["a"].action is apply.DiffAction.UPDATE
    assert "-  x: '1'" in by_name["a"].text and "+  x: '2'" in by_name["a"].text
    assert "ignored" not in by_name["a"].text
    assert "managedFields" not in by_name["a"].text and "resourceVersion" not in by_name["a"].text
    assert by_name["new"].action is apply.DiffAction.CREATE
    assert [k.name for k in prunes] == ["gone"]
    assert set(cluster.calls - calls) <= {"GET", "PATCH?dryRun"}
    await cluster.request("DELETE", f"/api/v1/namespaces/{namespace}")
