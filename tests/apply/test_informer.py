"""The live cache: one shared watch per (cluster, kind), events to their owners only.

The first tests are the pure parts (the store's relist diff, coalescing, routing) on plain
mappings. The rest run against real kit clusters: objects are created and edited by a second,
independent client, the cache's own client counts its requests (``Cluster.calls``), and the
apiserver's ``apiserver_request_total`` cross-checks that a resumed watch made no LIST. Outages
are real: a TCP proxy between the cache and the apiserver is cut (changes are made behind its
back through the direct client), and an apiserver of a kit of its own is stopped and started.
Each test selects its own objects by a label value of its own, so tests never see each other's.
"""

from __future__ import annotations

import base64
import contextlib
import os
import statistics
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest
import yaml
from anyio.abc import SocketStream, TaskStatus

from fleet import apply
from fleet.apply import discovery, watching
from fleet.apply.informer import InformerSettings, Kind, KindState, LiveCache
from fleet.apply.livestore import ADDED, DELETED, MODIFIED, CacheEvent, KindStore, merge
from fleet.apply.subscribing import Subscribers
from fleet.controlplane import LocalProvider, RunningCluster
from fleet.types import Manifest, ObjectKey
from tests.hub.hubkit import until

pytestmark = pytest.mark.anyio

LABEL = "fleet.test/informer"
TRACKING = "fleet.test/tracking-id"
MERGE_PATCH = "application/merge-patch+json"
FAST = InformerSettings(backoff_initial=0.2, backoff_max=1.0)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def configmap(
    ns: str, name: str, *, run: str, owner: str, value: str = "v1", labelled: bool = True
) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "namespace": ns,
            "labels": {LABEL: run} if labelled else {"other": run},
            "annotations": {TRACKING: owner},
        },
        "data": {"value": value},
    }


def cm_key(ns: str, name: str) -> ObjectKey:
    return ObjectKey(group="", kind="ConfigMap", namespace=ns, name=name)


def value(obj: Manifest | None) -> str:
    assert obj is not None
    return str(obj["data"]["value"])


def state_of(cache: LiveCache, kind: Kind) -> KindState:
    state = cache.state(kind)
    assert state is not None, f"{kind} is not watched"
    return state


def names(events: list[CacheEvent]) -> list[tuple[str, str]]:
    return [(e.type, e.key.name) for e in events]


# -- pure: the store, merging, routing ----------------------------------------------------------


def _obj(name: str, version: str, *, owner: str = "a") -> Manifest:
    return {
        "metadata": {
            "name": name,
            "namespace": "ns",
            "resourceVersion": version,
            "annotations": {TRACKING: owner},
        },
        "data": {"value": version},
    }


def test_relist_diff_is_added_modified_deleted() -> None:
    store = KindStore(group="", kind="ConfigMap", api_version="v1")
    first = store.replace([_obj("keep", "1"), _obj("edit", "2"), _obj("gone", "3")], version="3")
    assert names(first) == [(ADDED, "keep"), (ADDED, "edit"), (ADDED, "gone")]
    assert store.get(cm_key("ns", "keep")) == {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        **_obj("keep", "1"),
    }

    events = store.replace([_obj("keep", "1"), _obj("edit", "5"), _obj("new", "6")], version="7")

    assert sorted(names(events)) == [(ADDED, "new"), (DELETED, "gone"), (MODIFIED, "edit")]
    assert all(e.relisted for e in events)
    edited = next(e for e in events if e.key.name == "edit")
    assert (value(edited.old), value(edited.new), edited.resource_version) == ("2", "5", "5")
    gone = next(e for e in events if e.key.name == "gone")
    assert gone.new is None and value(gone.old) == "3" and gone.resource_version == "7"


def test_watch_events_update_the_store_and_repeats_are_dropped() -> None:
    store = KindStore(group="", kind="ConfigMap", api_version="v1")
    store.replace([_obj("a", "1")], version="1")

    assert store.observe(MODIFIED, _obj("a", "1")) is None  # same version: a replay
    changed = store.observe(MODIFIED, _obj("a", "2"))
    assert changed is not None and (value(changed.old), value(changed.new)) == ("1", "2")
    assert not changed.relisted
    added = store.observe(MODIFIED, _obj("b", "3"))  # unknown key: it is new to the cache
    assert added is not None and added.type == ADDED
    deleted = store.observe(DELETED, _obj("a", "4"))
    assert deleted is not None and deleted.type == DELETED and value(deleted.old) == "2"
    assert store.observe(DELETED, _obj("a", "4")) is None
    assert [o["metadata"]["name"] for o in store] == ["b"]
    with pytest.raises(ValueError, match="BOOKMARK"):
        store.observe("BOOKMARK", _obj("c", "5"))


def test_merge_keeps_first_old_and_last_new() -> None:
    key = cm_key("ns", "a")
    add = CacheEvent(ADDED, key, None, _obj("a", "1"), "1")
    edit = CacheEvent(MODIFIED, key, _obj("a", "1"), _obj("a", "2"), "2")
    drop = CacheEvent(DELETED, key, _obj("a", "2"), None, "3")

    merged = merge(add, edit)
    assert merged is not None and merged.type == ADDED and value(merged.new) == "2"
    merged = merge(edit, drop)
    assert merged is not None and merged.type == DELETED and value(merged.old) == "1"
    assert merge(add, drop) is None


async def test_events_reach_their_owners_only_and_a_burst_wakes_once() -> None:
    subscribers = Subscribers(tracking_annotation=TRACKING)
    woken: list[str] = []
    a = subscribers.subscribe("a", tracking="a", notify=woken.append)
    b = subscribers.subscribe("b", tracking="b", notify=woken.append)
    by_key = subscribers.subscribe("k", keys=[cm_key("ns", "x")], notify=woken.append)

    for version in ("1", "2", "3"):
        key = cm_key("ns", "x")
        subscribers.dispatch(CacheEvent(MODIFIED, key, _obj("x", "0"), _obj("x", version), version))

    assert sorted(woken) == ["a", "k"]  # once each, for three events
    assert b.pending == 0 and b.wakeups == 0
    (event,) = a.take()
    assert (value(event.old), value(event.new)) == ("0", "3")
    assert by_key.pending == 1

    # an object handed from a to b is news to both
    subscribers.dispatch(
        CacheEvent(MODIFIED, cm_key("ns", "y"), _obj("y", "1"), _obj("y", "2", owner="b"), "2")
    )
    assert (a.pending, b.pending) == (1, 1)

    def broken(_owner: str) -> None:
        raise RuntimeError("subscriber bug")

    subscribers.subscribe("c", tracking="c", notify=broken)
    subscribers.dispatch(CacheEvent(ADDED, cm_key("ns", "z"), None, _obj("z", "1", owner="c"), "1"))
    subscribers.unsubscribe("c")
    assert (
        subscribers.owners_of(
            CacheEvent(ADDED, cm_key("ns", "z"), None, _obj("z", "1", owner="c"), "1")
        )
        == set()
    )


# -- kit clusters -------------------------------------------------------------------------------


@pytest.fixture
async def editor(kit_clusters: list[RunningCluster]) -> AsyncIterator[apply.Cluster]:
    """A second client of the same cluster: the "someone else" who edits by hand."""
    async with apply.connect(kit_clusters[0].kubeconfig, name="editor") as connected:
        yield connected


async def namespace(editor: apply.Cluster) -> str:
    ns = unique("informer")
    await editor.request(
        "POST",
        "/api/v1/namespaces",
        body={"metadata": {"name": ns}, "apiVersion": "v1", "kind": "Namespace"},
    )
    return ns


async def create(editor: apply.Cluster, obj: Manifest) -> None:
    await editor.request(
        "POST", f"/api/v1/namespaces/{obj['metadata']['namespace']}/configmaps", body=obj
    )


async def set_value(editor: apply.Cluster, ns: str, name: str, new: str) -> None:
    await editor.request(
        "PATCH",
        f"/api/v1/namespaces/{ns}/configmaps/{name}",
        body={"data": {"value": new}},
        content_type=MERGE_PATCH,
    )


async def delete(editor: apply.Cluster, ns: str, name: str) -> None:
    await editor.request("DELETE", f"/api/v1/namespaces/{ns}/configmaps/{name}")


async def test_initial_list_fills_the_cache_and_edits_reach_the_owner_only(
    cluster: apply.Cluster, editor: apply.Cluster
) -> None:
    ns, run = await namespace(editor), unique("run")
    for name, owner in (("a1", "a"), ("a2", "a"), ("b1", "b")):
        await create(editor, configmap(ns, name, run=run, owner=owner))
    await create(editor, configmap(ns, "stranger", run=run, owner="a", labelled=False))

    async with LiveCache(
        cluster, label_selector=f"{LABEL}={run}", tracking_annotation=TRACKING
    ) as cache:
        kind = cache.ensure("v1", "ConfigMap")
        with anyio.fail_after(30):
            assert await cache.wait_warm(kind)
        assert sorted(o["metadata"]["name"] for o in cache.objects(kind, ns)) == ["a1", "a2", "b1"]
        assert cache.objects(kind, "elsewhere") == []
        assert cache.get(cm_key(ns, "stranger")) is None
        listed = cache.get(cm_key(ns, "a1"))
        assert listed is not None and (listed["apiVersion"], listed["kind"]) == ("v1", "ConfigMap")
        secret = ObjectKey(group="", kind="Secret", namespace=ns, name="a1")
        lookup = cache.lookup([cm_key(ns, "a1"), cm_key(ns, "stranger"), secret])
        assert list(lookup.found) == [cm_key(ns, "a1")]
        assert lookup.unknown == [cm_key(ns, "stranger"), secret]  # unlabelled / kind not watched
        a = cache.subscribe("a", tracking="a")
        b = cache.subscribe("b", tracking="b")
        by_key = cache.subscribe("watcher-of-a1", keys=[cm_key(ns, "a1")])

        # the unlabelled object is edited first: had the cache seen it, it would be pending first
        await set_value(editor, ns, "stranger", "x")
        await set_value(editor, ns, "a1", "v2")
        with anyio.fail_after(30):
            events = await a.wait()
        assert names(events) == [(MODIFIED, "a1")]
        (edit,) = events
        assert (value(edit.old), value(edit.new)) == ("v1", "v2")
        assert (
            edit.new is not None
            and edit.resource_version == edit.new["metadata"]["resourceVersion"]
        )
        assert value(cache.get(cm_key(ns, "a1"))) == "v2"
        with anyio.fail_after(30):
            assert names(await by_key.wait()) == [(MODIFIED, "a1")]

        await delete(editor, ns, "a2")
        with anyio.fail_after(30):
            events = await a.wait()
        assert names(events) == [(DELETED, "a2")] and events[0].new is None
        assert cache.get(cm_key(ns, "a2")) is None
        assert (b.pending, b.wakeups) == (0, 0)  # b never heard about a's objects

        await set_value(editor, ns, "b1", "v2")
        with anyio.fail_after(30):
            assert names(await b.wait()) == [(MODIFIED, "b1")]

        # a burst of edits on one target wakes it once, as one merged event
        wakeups = a.wakeups
        for step in range(5):
            await set_value(editor, ns, "a1", f"burst-{step}")
        await until(lambda: value(cache.get(cm_key(ns, "a1"))) == "burst-4", limit=30)
        assert a.wakeups == wakeups + 1
        (burst,) = a.take()
        assert (value(burst.old), value(burst.new)) == ("v2", "burst-4")
        assert b.pending == 0
        state = cache.state(kind)
        assert state is not None and state.warm and state.lists == 1 and state.error == ""


async def test_two_cluster_entries_on_one_apiserver_do_not_hear_each_other(
    kit_clusters: list[RunningCluster], cluster: apply.Cluster, editor: apply.Cluster
) -> None:
    """The loop of 250 entries sharing 4 apiservers: each entry's writes were the others' drift.
    With tracking ids that name the entry, each entry's target hears of its own objects only."""
    ns, run = await namespace(editor), unique("run")
    for entry in ("entry-a", "entry-b"):
        await create(
            editor, configmap(ns, f"app-{entry}", run=run, owner=f"fleet/app/{entry}/{ns}")
        )
    selector = f"{LABEL}={run}"
    async with (
        apply.connect(kit_clusters[0].kubeconfig, name="entry-b") as other,
        LiveCache(cluster, label_selector=selector, tracking_annotation=TRACKING) as cache_a,
        LiveCache(other, label_selector=selector, tracking_annotation=TRACKING) as cache_b,
    ):
        kinds = [cache.ensure("v1", "ConfigMap") for cache in (cache_a, cache_b)]
        with anyio.fail_after(30):
            assert all(
                [await c.wait_warm(k) for c, k in zip((cache_a, cache_b), kinds, strict=True)]
            )
        a = cache_a.subscribe("app@entry-a", tracking=f"fleet/app/entry-a/{ns}")
        b = cache_b.subscribe("app@entry-b", tracking=f"fleet/app/entry-b/{ns}")

        await set_value(editor, ns, "app-entry-b", "written-for-b")
        with anyio.fail_after(30):
            assert names(await b.wait()) == [(MODIFIED, "app-entry-b")]
        await set_value(editor, ns, "app-entry-a", "written-for-a")
        with anyio.fail_after(30):
            assert names(await a.wait()) == [(MODIFIED, "app-entry-a")]  # b's write came first
        assert b.pending == 0


async def test_an_object_larger_than_a_line_buffer_streams_through(
    cluster: apply.Cluster, editor: apply.Cluster
) -> None:
    """A watch event is one JSON line, here of ~1 MiB, read in many chunks and joined."""
    ns, run = await namespace(editor), unique("run")
    await create(editor, configmap(ns, "big", run=run, owner="big"))
    async with LiveCache(
        cluster, label_selector=f"{LABEL}={run}", tracking_annotation=TRACKING
    ) as cache:
        kind = cache.ensure("v1", "ConfigMap")
        with anyio.fail_after(30):
            assert await cache.wait_warm(kind)
        subscription = cache.subscribe("big", tracking="big")
        large = "x" * 1_000_000
        await set_value(editor, ns, "big", large)
        with anyio.fail_after(30):
            (event,) = await subscription.wait()
        assert value(event.new) == large
        state = state_of(cache, kind)
        assert state.warm and state.failures == 0 and state.watches == 1


async def test_a_kind_whose_crd_comes_later_is_picked_up(
    cluster: apply.Cluster, editor: apply.Cluster
) -> None:
    group, run = f"{unique('w')}.fleet.test", unique("run")
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "x-kubernetes-preserve-unknown-fields": True,
                        }
                    },
                }
            ],
        },
    }
    ns = await namespace(editor)
    widget = {
        "apiVersion": f"{group}/v1",
        "kind": "Widget",
        "metadata": {
            "name": "w1",
            "namespace": ns,
            "labels": {LABEL: run},
            "annotations": {TRACKING: "w"},
        },
        "spec": {"size": 1},
    }
    async with LiveCache(
        cluster, label_selector=f"{LABEL}={run}", tracking_annotation=TRACKING, settings=FAST
    ) as cache:
        kind = cache.ensure(f"{group}/v1", "Widget")
        subscription = cache.subscribe("w", tracking="w")
        await until(lambda: state_of(cache, kind).failures >= 2, limit=30)
        state = cache.state(kind)
        assert state is not None and not state.warm and state.error_since is not None
        assert f"does not serve {group}/v1 Widget" in state.error

        await editor.request(
            "POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", body=crd
        )
        try:

            async def created() -> bool:
                try:
                    await editor.request(
                        "POST", f"/apis/{group}/v1/namespaces/{ns}/widgets", body=widget
                    )
                except apply.ApiError as exc:
                    if exc.status in (404, 409):  # not served yet / created by the try before
                        return exc.status == 409
                    raise
                return True

            await until(created, limit=60)
            with anyio.fail_after(60):
                assert await cache.wait_warm(kind)
                events = await subscription.wait()
            assert names(events) == [(ADDED, "w1")]
            key = ObjectKey(group=group, kind="Widget", namespace=ns, name="w1")
            found = cache.get(key)
            assert found is not None and found["spec"] == {"size": 1}
            state = cache.state(kind)
            assert state is not None and state.error == "" and state.error_since is None
        finally:
            await editor.request(
                "DELETE", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.{group}"
            )
            discovery.forget(cluster, group)


async def test_a_watch_the_server_ends_resumes_without_a_list_or_a_lost_event(
    cluster: apply.Cluster, editor: apply.Cluster
) -> None:
    ns, run = await namespace(editor), unique("run")
    await create(editor, configmap(ns, "x", run=run, owner="x"))
    settings = InformerSettings(watch_seconds=1)
    async with LiveCache(
        cluster, label_selector=f"{LABEL}={run}", tracking_annotation=TRACKING, settings=settings
    ) as cache:
        kind = cache.ensure("v1", "ConfigMap")
        with anyio.fail_after(30):
            assert await cache.wait_warm(kind)
        subscription = cache.subscribe("x", tracking="x")
        client_gets = cluster.calls["GET"]

        for step in range(6):
            watches = state_of(cache, kind).watches
            await until(lambda n=watches: state_of(cache, kind).watches >= n + 1, limit=30)  # type: ignore[misc]
            await anyio.sleep(0.15 * step)  # edits land at different points of the 1 s watches
            await set_value(editor, ns, "x", f"v{step}")
            with anyio.fail_after(30):
                events = await subscription.wait()
            assert [value(e.new) for e in events] == [f"v{step}"]

        state = cache.state(kind)
        assert state is not None and state.warm
        assert state.lists == 1 and state.watches >= 7
        # every GET since is a watch (one may be starting as the counts are read): no LIST, no
        # discovery
        assert state.watches - 1 <= cluster.calls["GET"] - client_gets <= state.watches
        # (the apiserver's own LIST counter is not used here: on a cluster the whole test session
        # shares, other clients list ConfigMaps too; the cache's counts and the client's are ours)


class Proxy:
    """A TCP forwarder to the apiserver that can be cut (connections dropped, new ones refused)."""

    def __init__(self, port: int) -> None:
        self.target = port
        self.port = 0
        self.cut = False
        self._scopes: set[anyio.CancelScope] = set()
        self._flowing = anyio.Event()
        self._flowing.set()

    async def serve(self, *, task_status: TaskStatus[int] = anyio.TASK_STATUS_IGNORED) -> None:
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
        self.port = listener.extra(anyio.abc.SocketAttribute.local_port)
        task_status.started(self.port)
        await listener.serve(self._handle)

    async def _handle(self, client: SocketStream) -> None:
        async with client:
            if self.cut:
                return
            with anyio.CancelScope() as scope:
                self._scopes.add(scope)
                try:
                    upstream = await anyio.connect_tcp("127.0.0.1", self.target)
                    async with upstream, anyio.create_task_group() as tg:
                        tg.start_soon(self._pump, client, upstream, tg.cancel_scope)
                        tg.start_soon(self._pump, upstream, client, tg.cancel_scope)
                finally:
                    self._scopes.discard(scope)

    async def _pump(
        self, source: SocketStream, sink: SocketStream, done: anyio.CancelScope
    ) -> None:
        with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            async for chunk in source:
                await self._flowing.wait()
                await sink.send(chunk)
        done.cancel()  # one side closed: close the other

    def freeze(self) -> None:
        """Hold every byte, keep every connection open: a hung server, as the client sees it."""
        self._flowing = anyio.Event()

    def thaw(self) -> None:
        self._flowing.set()

    def disconnect(self) -> None:
        self.cut = True
        for scope in list(self._scopes):
            scope.cancel()

    def reconnect(self) -> None:
        self.cut = False


def through(kubeconfig: Path, port: int) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(kubeconfig.read_text())
    for entry in document["clusters"]:
        entry["cluster"]["server"] = f"https://127.0.0.1:{port}"
    return document


async def test_changes_behind_a_partition_arrive_as_relisted_events(
    kit_clusters: list[RunningCluster], editor: apply.Cluster
) -> None:
    running = kit_clusters[0]
    ns, run = await namespace(editor), unique("run")
    for name in ("p1", "p2"):
        await create(editor, configmap(ns, name, run=run, owner="p"))
    proxy = Proxy(running.port)
    async with anyio.create_task_group() as tg:
        port = await tg.start(proxy.serve)
        async with (
            apply.connect(through(running.kubeconfig, port), name="behind-proxy") as far,
            LiveCache(
                far, label_selector=f"{LABEL}={run}", tracking_annotation=TRACKING, settings=FAST
            ) as cache,
        ):
            kind = cache.ensure("v1", "ConfigMap")
            with anyio.fail_after(30):
                assert await cache.wait_warm(kind)
            subscription = cache.subscribe("p", tracking="p")

            proxy.disconnect()
            await until(lambda: not cache.is_warm(kind), limit=30)
            await set_value(editor, ns, "p1", "v2")
            await delete(editor, ns, "p2")
            await create(editor, configmap(ns, "p3", run=run, owner="p"))
            await until(lambda: state_of(cache, kind).failures >= 2, limit=30)
            state = cache.state(kind)
            assert state is not None and state.error and state.error_since is not None
            assert subscription.pending == 0 and value(cache.get(cm_key(ns, "p1"))) == "v1"

            lists = state_of(cache, kind).lists  # every try counts, the failed ones too
            proxy.reconnect()
            with anyio.fail_after(60):
                assert await cache.wait_warm(kind)
            events = subscription.take()
            assert sorted(names(events)) == [(ADDED, "p3"), (DELETED, "p2"), (MODIFIED, "p1")]
            assert all(e.relisted for e in events)
            assert (
                value(cache.get(cm_key(ns, "p1"))) == "v2" and cache.get(cm_key(ns, "p2")) is None
            )
            state = state_of(cache, kind)
            assert state.lists == lists + 1 and state.error == ""
        tg.cancel_scope.cancel()


async def test_a_silent_watch_makes_the_kind_cold_without_a_relist(
    kit_clusters: list[RunningCluster], editor: apply.Cluster
) -> None:
    running = kit_clusters[0]
    ns, run = await namespace(editor), unique("run")
    await create(editor, configmap(ns, "h1", run=run, owner="h"))
    # the server ends each watch after 1 s: a healthy stream is never silent for 3 s
    settings = InformerSettings(watch_seconds=1, silence_seconds=3.0)
    proxy = Proxy(running.port)
    async with anyio.create_task_group() as tg:
        port = await tg.start(proxy.serve)
        async with (
            apply.connect(through(running.kubeconfig, port), name="behind-proxy") as far,
            LiveCache(
                far,
                label_selector=f"{LABEL}={run}",
                tracking_annotation=TRACKING,
                settings=settings,
            ) as cache,
        ):
            kind = cache.ensure("v1", "ConfigMap")
            with anyio.fail_after(30):
                assert await cache.wait_warm(kind)
            subscription = cache.subscribe("h", tracking="h")
            await anyio.sleep(4)
            assert cache.is_warm(kind) and state_of(cache, kind).failures == 0

            proxy.freeze()
            await until(lambda: not cache.is_warm(kind), limit=30)
            state = state_of(cache, kind)
            assert "nothing for 3.0 s" in state.error and state.error_since is not None
            await set_value(editor, ns, "h1", "while-hung")

            proxy.thaw()
            with anyio.fail_after(60):
                assert await cache.wait_warm(kind)
                events = await subscription.wait()
            assert [value(e.new) for e in events] == ["while-hung"]
            assert not events[0].relisted  # the watch resumed: nothing was listed again
            state = state_of(cache, kind)
            assert state.lists == 1 and state.error == ""
        tg.cancel_scope.cancel()


@pytest.fixture(scope="module")
def own_kit(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[LocalProvider, RunningCluster]]:
    """A kit of one cluster for this module alone: its apiserver is stopped, its etcd compacted."""
    directory = tmp_path_factory.mktemp("informer-kit")
    with LocalProvider(kubeconfig_dir=directory, progress=lambda _: None) as kit:
        (running,) = kit.up(["informer-outage"])
        yield kit, running


async def compact_etcd(kit: LocalProvider) -> None:
    """Compact the kit's etcd up to now, as the apiserver itself does every 5 minutes."""
    url = kit._etcd_urls[0]  # the kit does not publish it (yet)
    async with aiohttp.ClientSession() as http:
        key = base64.b64encode(b"/").decode()
        async with http.post(f"{url}/v3/kv/range", json={"key": key, "limit": 1}) as answer:
            answer.raise_for_status()
            revision = (await answer.json())["header"]["revision"]
        async with http.post(
            f"{url}/v3/kv/compaction", json={"revision": revision, "physical": True}
        ) as answer:
            answer.raise_for_status()


@pytest.mark.clusters
async def test_410_gone_relists_and_the_cache_stays_right(
    own_kit: tuple[LocalProvider, RunningCluster], monkeypatch: pytest.MonkeyPatch
) -> None:
    kit, running = own_kit
    # the apiserver forgets history only once etcd compacted it and its watch cache restarted
    await compact_etcd(kit)
    kit.stop_apiserver(running.name)
    kit.start_apiserver(running.name)
    async with (
        apply.connect(running.kubeconfig, name="editor") as editor,
        apply.connect(running.kubeconfig) as cluster,
    ):
        resource = await discovery.resolve(cluster, "v1", "ConfigMap")
        assert resource is not None
        with pytest.raises(watching.Expired):
            await watching.watch_once(
                cluster,
                resource,
                version="1",
                label_selector=f"{LABEL}=nothing",
                seconds=5,
                on_open=lambda: None,
                on_event=lambda _kind, _obj: None,
            )

        ns, run = await namespace(editor), unique("run")
        await create(editor, configmap(ns, "x", run=run, owner="x"))
        settings = InformerSettings(watch_seconds=1)
        async with LiveCache(
            cluster,
            label_selector=f"{LABEL}={run}",
            tracking_annotation=TRACKING,
            settings=settings,
        ) as cache:
            kind = cache.ensure("v1", "ConfigMap")
            with anyio.fail_after(30):
                assert await cache.wait_warm(kind)
            subscription = cache.subscribe("x", tracking="x")
            # as if the cache had slept through the server's history: its next watch starts
            # from a version the server has forgotten, and the server refuses it
            real, forgotten = watching.watch_once, ["1"]

            async def watch_once(*args: Any, version: str, **kwargs: Any) -> str:
                return await real(
                    *args, version=forgotten.pop() if forgotten else version, **kwargs
                )

            monkeypatch.setattr(watching, "watch_once", watch_once)
            await until(lambda: state_of(cache, kind).lists == 2 and cache.is_warm(kind), limit=30)
            assert subscription.pending == 0  # nothing changed: the relist diff is empty
            assert not forgotten
            assert state_of(cache, kind).failures == 0  # a 410 is not a failure: relisted at once

            await set_value(editor, ns, "x", "after")
            with anyio.fail_after(30):
                assert [value(e.new) for e in await subscription.wait()] == ["after"]


@pytest.mark.clusters
async def test_an_apiserver_outage_makes_the_cache_cold_then_warm(
    own_kit: tuple[LocalProvider, RunningCluster],
) -> None:
    kit, running = own_kit
    async with (
        apply.connect(running.kubeconfig, name="editor") as editor,
        apply.connect(running.kubeconfig) as cluster,
        LiveCache(
            cluster, label_selector=f"{LABEL}=outage", tracking_annotation=TRACKING, settings=FAST
        ) as cache,
    ):
        ns = await namespace(editor)
        await create(editor, configmap(ns, "o1", run="outage", owner="o"))
        await create(editor, configmap(ns, "o2", run="outage", owner="o"))
        kind = cache.ensure("v1", "ConfigMap")
        with anyio.fail_after(30):
            assert await cache.wait_warm(kind)
        subscription = cache.subscribe("o", tracking="o")

        kit.stop_apiserver(running.name)
        try:
            await until(lambda: not cache.is_warm(kind), limit=30)
            await until(lambda: state_of(cache, kind).failures >= 2, limit=30)
            state = state_of(cache, kind)
            assert state.error and state.error_since is not None
        finally:
            kit.start_apiserver(running.name)
        with anyio.fail_after(60):
            assert await cache.wait_warm(kind)
        state = state_of(cache, kind)
        assert state.lists >= 2 and state.error == "" and state.error_since is None
        assert subscription.pending == 0  # nothing changed while it was down

        await set_value(editor, ns, "o1", "after")
        await delete(editor, ns, "o2")
        with anyio.fail_after(30):
            events = await subscription.wait()
            while len(events) < 2:
                events += await subscription.wait()
        assert sorted(names(events)) == [(DELETED, "o2"), (MODIFIED, "o1")]


async def test_release_stops_the_stream_when_its_last_user_goes(cluster: apply.Cluster) -> None:
    async with LiveCache(cluster, label_selector=f"{LABEL}={unique('run')}") as cache:
        kind = cache.ensure("v1", "ConfigMap")
        assert cache.ensure("v1", "ConfigMap") == kind == Kind("", "ConfigMap")
        with anyio.fail_after(30):
            assert await cache.wait_warm(kind)
        cache.release(kind)
        assert cache.is_warm(kind) and cache.kinds() == [kind]
        cache.release(kind)
        assert cache.kinds() == [] and cache.state(kind) is None and not cache.is_warm(kind)
        with anyio.fail_after(1):
            assert not await cache.wait_warm(kind)
    with pytest.raises(RuntimeError, match="not running"):
        cache.ensure("v1", "Secret")

    async with LiveCache(cluster, label_selector=f"{LABEL}={unique('run')}") as cache:
        kind = cache.ensure("v1", "ConfigMap", user="web@a")
        for _ in range(3):  # a target subscribing again after each sync counts once
            assert cache.ensure("v1", "ConfigMap", user="web@a") == kind
        cache.ensure("v1", "ConfigMap", user="reader")
        assert cache.users(kind) == 2
        cache.release(kind, user="nobody")  # not a user: nothing changes
        cache.release(kind, user="web@a")
        cache.release(kind, user="web@a")
        assert cache.users(kind) == 1 and cache.kinds() == [kind]
        cache.release(kind, user="reader")
        assert cache.users(kind) == 0 and cache.kinds() == []

    async with anyio.create_task_group() as tg:  # the other way to run it: started in a group
        served = LiveCache(cluster, label_selector=f"{LABEL}={unique('run')}")
        await tg.start(served.run)
        kind = served.ensure("v1", "Secret")
        with anyio.fail_after(30):
            assert await served.wait_warm(kind)
        tg.cancel_scope.cancel()
    assert served.kinds() == []


KINDS = (
    ("v1", "ConfigMap"),
    ("v1", "Secret"),
    ("v1", "Service"),
    ("v1", "ServiceAccount"),
    ("apps/v1", "Deployment"),
)


async def test_idle_cost_and_edit_latency(cluster: apply.Cluster, editor: apply.Cluster) -> None:
    """Idle: requests made by a cache watching 5 kinds (FLEET_INFORMER_IDLE_SECONDS, default 10);
    latency: from a hand edit sent to the owner's notify callback, median of 20. Printed."""
    idle = float(os.environ.get("FLEET_INFORMER_IDLE_SECONDS", "10"))
    ns, run = await namespace(editor), unique("run")
    await create(editor, configmap(ns, "timed", run=run, owner="t"))
    async with LiveCache(
        cluster, label_selector=f"{LABEL}={run}", tracking_annotation=TRACKING
    ) as cache:
        kinds = [cache.ensure(api_version, kind) for api_version, kind in KINDS]
        with anyio.fail_after(60):
            for kind in kinds:
                assert await cache.wait_warm(kind)
        before, calls = cache.requests, sum(cluster.calls.values())
        await anyio.sleep(idle)
        made = sum(cluster.calls.values()) - calls
        assert cache.requests - before == made  # every request the client made was the cache's
        watch_seconds = InformerSettings().watch_seconds
        assert made <= len(kinds) * (int(idle // watch_seconds) + 1)
        print(
            f"\nidle: {made} requests in {idle:.0f} s for {len(kinds)} kinds "
            f"({made * 60 / idle:.2f}/min; steady state {len(kinds) * 60 / watch_seconds:.2f}/min)"
        )

        woken: list[float] = []
        subscription = cache.subscribe(
            "t", tracking="t", notify=lambda _owner: woken.append(time.perf_counter())
        )
        latencies = []
        for step in range(20):
            sent = time.perf_counter()
            await set_value(editor, ns, "timed", f"t{step}")
            await until(lambda n=step: len(woken) > n, limit=30)  # type: ignore[misc]
            latencies.append(woken[step] - sent)
            assert [value(e.new) for e in subscription.take()] == [f"t{step}"]
        print(
            f"edit -> notify: median {statistics.median(latencies) * 1000:.1f} ms, "
            f"max {max(latencies) * 1000:.1f} ms (n=20)"
        )
