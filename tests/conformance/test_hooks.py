"""Resource hooks on a kit cluster, as Argo CD documents them.

- A PreSync hook Job with ``generateName`` is created (POST, named by the server) and completes
  before any Sync-phase object is applied; ``HookSucceeded`` deletes it once it succeeded. It is
  held back with ``suspend: true`` so the test can see the Sync objects wait for it, then lifted
  as an operator would: the kit's Job controller runs it and kwok completes its Pod.
- A PostSync hook that really fails (its Pod fits no node; the Job controller fails the Job at
  its ``activeDeadlineSeconds``) fails the sync, the status naming the hook and the reason, and
  the SyncFail hook runs; on a sync that succeeds the SyncFail hook does not run.
- A resync of the commit already applied runs no hook; a new commit runs them again, and
  ``BeforeHookCreation`` (the default) deletes the last run first.
- Hooks are not in the app's inventory: a hook that leaves git is not pruned as an app object.
"""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from fleet import apply
from fleet.controlplane import RunningCluster
from fleet.hub.hub import Hub
from fleet.reconcile.syncing import AppSync, SyncResult, sync
from fleet.reconcile.waving import WaveOptions
from fleet.render import HelmOptions, RenderSpec
from fleet.report import TargetStatus
from fleet.types import RenderedSet
from tests.conformance.kit import (
    DELETE_POLICY,
    HOOK,
    QUICK,
    cm_path,
    configmap,
    get,
    job,
    job_path,
    jobs_named,
    resume,
    unique,
    until,
)
from tests.hub import hubkit
from tests.render.argokit import Rig
from tests.sources.gitkit import Remote

pytestmark = pytest.mark.anyio


async def test_presync_generate_name_hook_runs_first_and_is_deleted(
    cluster: apply.Cluster, namespace: str
) -> None:
    app = AppSync(name=unique("pre"), namespace=namespace, waves=QUICK)
    notes = {HOOK: "PreSync", DELETE_POLICY: "HookSucceeded"}
    objects = [
        job("migrate-", generate=True, suspend=True, annotations=notes),
        configmap("app"),
        configmap("on-failure", notes={HOOK: "SyncFail"}),
    ]
    results: list[SyncResult] = []

    async def run() -> None:
        results.append(await sync(cluster, app, RenderedSet.of(objects), revision="r1"))

    async with anyio.create_task_group() as tg:
        tg.start_soon(run)

        async def hook_created() -> bool:
            return bool(await jobs_named(cluster, namespace, "migrate-"))

        await until(hook_created)
        [hook] = await jobs_named(cluster, namespace, "migrate-")
        name = hook["metadata"]["name"]
        assert name != "migrate-" and hook["metadata"]["generateName"] == "migrate-"
        for _ in range(10):  # the Sync phase waits for the PreSync hook
            assert await get(cluster, cm_path(namespace, "app")) is None
            await anyio.sleep(0.3)
        await resume(cluster, namespace, name)
    [result] = results
    assert result.in_sync, result.problems()
    assert await get(cluster, cm_path(namespace, "app")) is not None
    by_name = {c.key.name: c for c in result.changes.changes}
    assert by_name[name].outcome is apply.Outcome.CREATED
    assert by_name[name].reason == "PreSync hook completed; deleted (HookSucceeded)"
    assert await jobs_named(cluster, namespace, "migrate-") == []  # HookSucceeded
    assert await get(cluster, cm_path(namespace, "on-failure")) is None  # no SyncFail
    inventory = await apply.read_inventory(cluster, app.inventory_id)
    assert inventory is not None
    assert {k.name for k in inventory.entries} == {"app"}  # hooks are not tracked


async def test_failing_postsync_hook_fails_the_sync_and_runs_syncfail(
    cluster: apply.Cluster, namespace: str
) -> None:
    app = AppSync(name=unique("post"), namespace=namespace, waves=QUICK)
    objects = [
        configmap("app"),
        job("smoke-", generate=True, failing=True, annotations={HOOK: "PostSync"}),
        configmap("on-failure", notes={HOOK: "SyncFail"}),
    ]
    result = await sync(cluster, app, RenderedSet.of(objects), revision="r1")
    assert not result.in_sync
    assert result.verdict == "failed"
    [failed] = [c for c in result.changes.changes if c.outcome is apply.Outcome.FAILED]
    assert failed.key.name.startswith("smoke-") and failed.key.kind == "Job"
    assert failed.reason.startswith("PostSync hook failed: ")
    assert "deadline" in failed.reason.lower()
    assert result.stopped is not None and result.stopped.startswith("PostSync wave 0: batch/Job")
    assert any(failed.key.name in p and "PostSync hook failed" in p for p in result.problems())
    synced_fail = await get(cluster, cm_path(namespace, "on-failure"))
    assert synced_fail is not None  # the SyncFail hook ran
    by_name = {c.key.name: c for c in result.changes.changes}
    assert by_name["on-failure"].reason == "SyncFail hook completed"
    assert by_name["app"].outcome is apply.Outcome.CREATED
    # the failed run stays (no HookFailed policy): BeforeHookCreation removes it next time
    assert [j["metadata"]["name"] for j in await jobs_named(cluster, namespace, "smoke-")] == [
        failed.key.name
    ]


async def test_resync_runs_no_hook_and_a_new_commit_runs_them_again(
    cluster: apply.Cluster, namespace: str
) -> None:
    app = AppSync(name=unique("again"), namespace=namespace, waves=QUICK)
    objects = [job("seed-", generate=True, annotations={HOOK: "PreSync"}), configmap("app")]
    first = await sync(cluster, app, RenderedSet.of(objects), revision="r1")
    assert first.in_sync, first.problems()
    [run1] = await jobs_named(cluster, namespace, "seed-")

    resync = await sync(cluster, app, RenderedSet.of(objects), revision="r1")
    assert resync.in_sync
    assert [c.key.name for c in resync.changes.changes] == ["app"]  # no hook ran
    assert [j["metadata"]["uid"] for j in await jobs_named(cluster, namespace, "seed-")] == [
        run1["metadata"]["uid"]
    ]

    second = await sync(cluster, app, RenderedSet.of(objects), revision="r2")
    assert second.in_sync, second.problems()
    [run2] = await jobs_named(cluster, namespace, "seed-")  # BeforeHookCreation: one run left
    assert run2["metadata"]["uid"] != run1["metadata"]["uid"]
    assert (
        await get(cluster, f"/apis/batch/v1/namespaces/{namespace}/jobs/{run1['metadata']['name']}")
        is None
    )

    # a hook that leaves git is not pruned as an app object: it was never tracked
    third = await sync(cluster, app, RenderedSet.of([configmap("app")]), revision="r3")
    assert third.in_sync
    assert not third.changes.of(apply.Outcome.PRUNED)
    assert [j["metadata"]["uid"] for j in await jobs_named(cluster, namespace, "seed-")] == [
        run2["metadata"]["uid"]
    ]


def _hook_yaml(namespace: str, *, phase: str, prefix: str, failing: bool = False) -> str:
    stuck = (
        "      nodeSelector: {fleet.dev/no-such-node: 'true'}\n  activeDeadlineSeconds: 2\n"
        if failing
        else ""
    )
    return f"""apiVersion: batch/v1
kind: Job
metadata:
  generateName: {prefix}
  namespace: {namespace}
  annotations: {{argocd.argoproj.io/hook: {phase}}}
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers: [{{name: c, image: registry.local/job:1}}]
{stuck}"""


async def test_hub_runs_hooks_per_commit_and_shows_a_failed_hook(
    kit_clusters: list[RunningCluster], tmp_path: Path
) -> None:
    """Through the hub, from a real git remote: the PreSync hook runs once per commit (the
    self-heal of a hand-made drift, a full sync of the same commit, runs none), and a failing
    PostSync hook leaves the cell OutOfSync with an error naming the hook and why."""
    ns = unique("hooks-hub")
    kit = kit_clusters[0]
    remote = Remote(tmp_path / "git")
    remote.commit(
        {
            "app/settings.yaml": hubkit.configmap(ns, "v1"),
            "app/migrate.yaml": _hook_yaml(ns, phase="PreSync", prefix="migrate-"),
        }
    )
    settings = hubkit.hub_settings(tmp_path)
    config = hubkit.fleet_yaml(remote.url, ns).replace(
        "selfHeal: true", "selfHeal: true, createNamespace: true"
    )
    settings.config_path.write_text(config)
    hubkit.drop(kit, settings.clusters_dir)
    hub = Hub(settings)

    def cell() -> TargetStatus:
        return hub.board.cell("web", kit.name)

    async with apply.connect(kit.kubeconfig) as cluster, anyio.create_task_group() as tg:
        port = await tg.start(hub.run)
        await hubkit.until(lambda: cell().ready, limit=180)
        [run1] = await jobs_named(cluster, ns, "migrate-")
        # drift by hand: the hub's self-heal is a full sync of the same commit, and runs no hook
        synced_before = cell().last_sync_at or 0.0
        await cluster.request(
            "PATCH",
            cm_path(ns, "settings"),
            body={"data": {"value": "drifted"}},
            content_type="application/merge-patch+json",
        )

        async def healed(value: str) -> bool:
            return await hubkit.value_on(kit, ns) == value

        async def resynced() -> bool:
            return (cell().last_sync_at or 0.0) > synced_before and await healed("v1")

        await hubkit.until(resynced, limit=180)
        assert [j["metadata"]["uid"] for j in await jobs_named(cluster, ns, "migrate-")] == [
            run1["metadata"]["uid"]
        ]

        remote.commit({"app/settings.yaml": hubkit.configmap(ns, "v2")})
        assert await hubkit.push_webhook(port, remote.url) == 200
        await hubkit.until(lambda: healed("v2"), limit=180)

        async def rerun() -> bool:
            found = await jobs_named(cluster, ns, "migrate-")
            return [j["metadata"]["uid"] for j in found] not in ([], [run1["metadata"]["uid"]])

        await hubkit.until(rerun, limit=180)
        await hubkit.until(lambda: cell().ready, limit=180)

        remote.commit(
            {"app/smoke.yaml": _hook_yaml(ns, phase="PostSync", prefix="smoke-", failing=True)}
        )
        assert await hubkit.push_webhook(port, remote.url) == 200
        await hubkit.until(lambda: "PostSync hook failed" in cell().error, limit=180)
        status = cell()
        assert status.sync == "OutOfSync" and not status.ready
        assert "batch/Job" in status.error and "smoke-" in status.error
        tg.cancel_scope.cancel()
    await cluster_cleanup(kit, ns)


async def cluster_cleanup(kit: RunningCluster, namespace: str) -> None:
    async with apply.connect(kit.kubeconfig) as cluster:
        await cluster.request("DELETE", f"/api/v1/namespaces/{namespace}")


async def test_a_running_pod_hook_is_not_complete(cluster: apply.Cluster, namespace: str) -> None:
    """A Pod hook completes when it Succeeded, not when it is Running and Ready (kwok runs a bare
    Pod for ever): the sync fails once its wait ends, naming the hook."""
    timing = WaveOptions(wave_timeout=8.0, sync_timeout=60.0, poll_interval=0.3)
    app = AppSync(name=unique("pod"), namespace=namespace, waves=timing)
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "probe", "annotations": {HOOK: "Sync"}},
        "spec": {"containers": [{"name": "c", "image": "registry.local/probe:1"}]},
    }
    results: list[SyncResult] = []

    async def run() -> None:
        results.append(await sync(cluster, app, RenderedSet.of([pod]), revision="r1"))

    async with anyio.create_task_group() as tg:
        tg.start_soon(run)

        async def running() -> bool:
            live = await get(cluster, f"/api/v1/namespaces/{namespace}/pods/probe")
            return live is not None and (live.get("status") or {}).get("phase") == "Running"

        await until(running)
        assert not results  # Running is not done
    [result] = results
    [change] = result.changes.changes
    assert change.outcome is apply.Outcome.FAILED
    assert change.reason == (
        "Sync hook did not complete before the wait ended (Progressing: pod is Running)"
    )
    assert not result.in_sync


async def test_failed_presync_hook_stops_the_sync_and_hook_failed_deletes_it(
    cluster: apply.Cluster, namespace: str
) -> None:
    """A PreSync hook that fails stops the whole sync (nothing of the Sync phase is applied);
    ``HookFailed`` deletes the failed run."""
    app = AppSync(name=unique("prefail"), namespace=namespace, waves=QUICK)
    notes = {HOOK: "PreSync", DELETE_POLICY: "HookFailed"}
    objects = [job("check-", generate=True, failing=True, annotations=notes), configmap("app")]
    result = await sync(cluster, app, RenderedSet.of(objects), revision="r1")
    assert not result.in_sync
    [failed] = [c for c in result.changes.changes if c.outcome is apply.Outcome.FAILED]
    assert failed.key.name.startswith("check-")
    assert failed.reason.startswith("PreSync hook failed: ")
    assert failed.reason.endswith("; deleted (HookFailed)")
    assert await jobs_named(cluster, namespace, "check-") == []
    assert await get(cluster, cm_path(namespace, "app")) is None
    [skipped] = [c for c in result.changes.changes if c.key.name == "app"]
    assert skipped.outcome is apply.Outcome.SKIPPED
    assert skipped.reason.startswith("not applied: PreSync wave 0: batch/Job")


HELM_JOB = """apiVersion: batch/v1
kind: Job
metadata:
  name: {{ .Release.Name }}-migrate
  annotations:
    "helm.sh/hook": pre-install,pre-upgrade
    "helm.sh/hook-weight": "-5"
    "helm.sh/hook-delete-policy": hook-succeeded
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers: [{name: c, image: registry.local/migrate:1}]
"""
HELM_TEST = """apiVersion: v1
kind: Pod
metadata:
  name: {{ .Release.Name }}-test
  annotations: {"helm.sh/hook": test}
spec:
  containers: [{name: c, image: registry.local/test:1}]
"""
HELM_CM = """apiVersion: v1
kind: ConfigMap
metadata: {name: {{ .Release.Name }}-cfg}
data: {a: "1"}
"""


async def test_helm_hooks_from_helm_template_run_as_argo_cd_maps_them(
    cluster: apply.Cluster, namespace: str, tmp_path: Path
) -> None:
    """A chart rendered by fleet's helm renderer (``helm template``, hooks included): its
    pre-install hook runs as a PreSync hook and ``hook-succeeded`` deletes it; its test hook has
    no sync phase and is not applied (a warning says so); hooks stay out of the inventory."""
    rig = Rig(
        tmp_path,
        {
            "chart/Chart.yaml": "apiVersion: v2\nname: web\nversion: 0.1.0\n",
            "chart/templates/job.yaml": HELM_JOB,
            "chart/templates/test.yaml": HELM_TEST,
            "chart/templates/cm.yaml": HELM_CM,
        },
    )
    rendered = await rig.render(
        RenderSpec("chart", namespace=namespace, helm=HelmOptions(), app="web")
    )
    assert {o["kind"] for o in rendered.objects} == {"Job", "Pod", "ConfigMap"}
    app = AppSync(name=unique("helm"), namespace=namespace, waves=QUICK)
    result = await sync(cluster, app, rendered, revision="r1")
    assert result.in_sync, result.problems()
    by_name = {c.key.name: c for c in result.changes.changes}
    assert set(by_name) == {"web-migrate", "web-cfg"}
    assert by_name["web-migrate"].reason == "PreSync hook completed; deleted (HookSucceeded)"
    assert await get(cluster, f"/apis/batch/v1/namespaces/{namespace}/jobs/web-migrate") is None
    assert await get(cluster, f"/api/v1/namespaces/{namespace}/pods/web-test") is None
    assert any("Pod" in w and "web-test" in w and "helm.sh/hook test" in w for w in result.warnings)
    inventory = await apply.read_inventory(cluster, app.inventory_id)
    assert inventory is not None and {k.name for k in inventory.entries} == {"web-cfg"}


async def test_before_hook_creation_never_deletes_a_strangers_object(
    cluster: apply.Cluster, namespace: str
) -> None:
    """A Job ``migrate`` someone made by hand has the name of the app's PreSync hook: the
    BeforeHookCreation delete keeps it (it is not this app's), the hook fails saying so and
    whose it is, and nothing of the Sync phase is applied."""
    stranger = job("migrate", suspend=True)
    made = await cluster.request("POST", job_path(namespace), body=stranger)
    app = AppSync(name=unique("stranger"), namespace=namespace, waves=QUICK)
    objects = [job("migrate", annotations={HOOK: "PreSync"}), configmap("app")]
    result = await sync(cluster, app, RenderedSet.of(objects), revision="r1")
    assert not result.in_sync
    assert result.stopped is not None
    assert (
        f"PreSync wave 0: PreSync hook batch/Job {namespace}/migrate: an object of its name "
        "exists and is not this app's (owner: not managed by fleet); it is kept"
    ) in result.stopped
    [failed] = [c for c in result.changes.changes if c.key.name == "migrate"]
    assert failed.outcome is apply.Outcome.FAILED
    assert failed.reason.startswith("PreSync hook batch/Job")
    assert "exists and is not this app's" in failed.reason
    kept = await get(cluster, job_path(namespace, "migrate"))
    assert kept is not None
    assert kept["metadata"]["uid"] == made["metadata"]["uid"]
    assert not kept["metadata"].get("deletionTimestamp")
    assert await get(cluster, cm_path(namespace, "app")) is None

    # the user deletes their Job: the hook runs; on the next commit its own run is replaced
    await cluster.request("DELETE", job_path(namespace, "migrate"))

    async def stranger_gone() -> bool:
        return await get(cluster, job_path(namespace, "migrate")) is None

    await until(stranger_gone)
    second = await sync(cluster, app, RenderedSet.of(objects), revision="r1")
    assert second.in_sync, second.problems()
    first_run = await get(cluster, job_path(namespace, "migrate"))
    assert first_run is not None
    third = await sync(cluster, app, RenderedSet.of(objects), revision="r2")
    assert third.in_sync, third.problems()
    second_run = await get(cluster, job_path(namespace, "migrate"))
    assert second_run is not None
    assert second_run["metadata"]["uid"] != first_run["metadata"]["uid"]
