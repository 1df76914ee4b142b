"""Sync phases, waves, hooks and per-object options as pure logic (no cluster).

The order of a sync is checked against Argo CD's documented semantics: PreSync hooks, then the
Sync phase by ``argocd.argoproj.io/sync-wave`` (negative first, default 0) and Argo's kind order
within a wave, then PostSync hooks; SyncFail hooks apart. Helm hook annotations map as Argo CD
maps them. Bad values are errors naming the object and the annotation.
"""

from __future__ import annotations

from typing import Any

import pytest

from fleet import plan
from fleet.errors import StalledError
from fleet.plan import hooks, options, waves
from fleet.plan.hooks import DeletePolicy, Phase
from fleet.types import Manifest, ObjectKey

SCOPES = {
    ("", "ConfigMap"): True,
    ("", "Namespace"): False,
    ("", "Service"): True,
    ("", "Pod"): True,
    ("apps", "Deployment"): True,
    ("batch", "Job"): True,
    ("apiextensions.k8s.io", "CustomResourceDefinition"): False,
}


def obj(kind: str, name: str, *, api: str = "v1", generate: bool = False) -> Manifest:
    metadata: dict[str, Any] = {"generateName": name} if generate else {"name": name}
    return {"apiVersion": api, "kind": kind, "metadata": metadata}


def annotated(kind: str, name: str, annotations: dict[str, str], **kw: Any) -> Manifest:
    manifest = obj(kind, name, **kw)
    manifest["metadata"]["annotations"] = annotations
    return manifest


def prepared(*manifests: Manifest) -> tuple[plan.DesiredObject, ...]:
    return plan.prepare(manifests, app="web", namespace="web", scopes=SCOPES)


def schedule_of(*manifests: Manifest, run_hooks: bool = True) -> tuple[waves.Wave, ...]:
    desired, found, _ = hooks.split(prepared(*manifests))
    the_plan = plan.make_plan(desired, app="web", inventory={}, live={}, policy=plan.PrunePolicy())
    return waves.schedule(the_plan.applies, found, run_hooks=run_hooks)


def names(wave: waves.Wave) -> list[str]:
    return [s.key.name for s in wave.steps] + [h.key.name or h.generate_name for h in wave.hooks]


WAVE = waves.SYNC_WAVE


def test_phases_then_waves_then_kind_order() -> None:
    order = schedule_of(
        annotated("ConfigMap", "late", {WAVE: "5"}),
        annotated("ConfigMap", "early", {WAVE: "-1"}),
        obj("Deployment", "app", api="apps/v1"),
        obj("Service", "svc"),
        obj("Namespace", "other"),  # holds none of them: stays in its wave
        annotated("Job", "migrate-", {hooks.HOOK: "PreSync"}, api="batch/v1", generate=True),
        annotated("Job", "smoke", {hooks.HOOK: "PostSync"}, api="batch/v1"),
        annotated("Job", "cleanup", {hooks.HOOK: "SyncFail"}, api="batch/v1"),
    )
    assert [(w.phase, w.number) for w in order] == [
        (Phase.PRE_SYNC, 0),
        (Phase.SYNC, -1),
        (Phase.SYNC, 0),
        (Phase.SYNC, 5),
        (Phase.POST_SYNC, 0),
    ]
    assert names(order[0]) == ["migrate-"]
    assert names(order[2]) == ["other", "svc", "app"]  # Namespace, Service, Deployment
    assert order[2].name == "sync wave 0"
    assert names(order[4]) == ["smoke"]


def test_sync_fail_hooks_only_in_failure_waves() -> None:
    desired, found, _ = hooks.split(
        prepared(annotated("Job", "cleanup", {hooks.HOOK: "SyncFail"}, api="batch/v1"))
    )
    assert desired == ()
    assert waves.schedule((), found) == ()
    failing = waves.failure_waves(found)
    assert [(w.phase, names(w)) for w in failing] == [(Phase.SYNC_FAIL, ["cleanup"])]


def test_no_hooks_on_a_resync() -> None:
    order = schedule_of(
        obj("ConfigMap", "a"),
        annotated("Job", "migrate", {hooks.HOOK: "PreSync"}, api="batch/v1"),
        run_hooks=False,
    )
    assert [(w.phase, names(w)) for w in order] == [(Phase.SYNC, ["a"])]


def test_sync_hook_runs_in_its_wave_with_the_objects() -> None:
    order = schedule_of(
        annotated("ConfigMap", "a", {WAVE: "1"}),
        annotated("Pod", "check", {hooks.HOOK: "Sync", WAVE: "1"}),
    )
    assert [(w.phase, w.number, names(w)) for w in order] == [(Phase.SYNC, 1, ["a", "check"])]


@pytest.mark.parametrize("value", ["one", "1.5", ""])
def test_bad_wave_names_object_and_annotation(value: str) -> None:
    with pytest.raises(StalledError) as caught:
        schedule_of(annotated("ConfigMap", "settings", {WAVE: value}))
    message = str(caught.value)
    assert "ConfigMap web/settings" in message and WAVE in message


def test_bad_wave_on_a_hook_refused_even_when_hooks_do_not_run() -> None:
    with pytest.raises(StalledError, match="hook-weight"):
        schedule_of(
            annotated(
                "Job", "m", {hooks.HELM_HOOK: "pre-install", waves.HELM_WEIGHT: "x"}, api="batch/v1"
            ),
            run_hooks=False,
        )


def test_helm_hooks_map_as_argo_cd_maps_them() -> None:
    _, found, warnings = hooks.split(
        prepared(
            annotated("Job", "pre", {hooks.HELM_HOOK: "pre-install,pre-upgrade"}, api="batch/v1"),
            annotated(
                "Job",
                "post",
                {
                    hooks.HELM_HOOK: "post-install",
                    hooks.HELM_DELETE_POLICY: "hook-succeeded",
                    waves.HELM_WEIGHT: "-2",
                },
                api="batch/v1",
            ),
            annotated("Pod", "test", {hooks.HELM_HOOK: "test"}),
        )
    )
    by_name = {h.key.name: h for h in found}
    assert by_name["pre"].phases == {Phase.PRE_SYNC}
    assert by_name["pre"].policies == {DeletePolicy.BEFORE_HOOK_CREATION}  # Argo's default
    assert by_name["post"].phases == {Phase.POST_SYNC}
    assert by_name["post"].policies == {DeletePolicy.HOOK_SUCCEEDED}
    assert waves.wave_of(by_name["post"].key, by_name["post"].manifest) == -2
    assert "test" not in by_name  # Helm test hooks have no sync phase
    assert any("Pod web/test" in w and "test" in w for w in warnings)


def test_crd_install_is_an_ordinary_object_and_argo_annotation_wins() -> None:
    desired, found, _ = hooks.split(
        prepared(
            annotated("ConfigMap", "crd", {hooks.HELM_HOOK: "crd-install"}),
            annotated(
                "Job", "j", {hooks.HELM_HOOK: "pre-install", hooks.HOOK: "PostSync"}, api="batch/v1"
            ),
        )
    )
    assert [d.key.name for d in desired] == ["crd"]
    assert [(h.key.name, h.phases) for h in found] == [("j", frozenset({Phase.POST_SYNC}))]


def test_skip_is_never_applied_and_unknown_phase_refused() -> None:
    desired, found, _ = hooks.split(prepared(annotated("ConfigMap", "s", {hooks.HOOK: "Skip"})))
    assert desired == () and found == ()
    with pytest.raises(StalledError, match=r"ConfigMap web/s.*argocd\.argoproj\.io/hook"):
        hooks.split(prepared(annotated("ConfigMap", "s", {hooks.HOOK: "Presync"})))
    with pytest.raises(StalledError, match="hook-delete-policy"):
        hooks.split(
            prepared(
                annotated("ConfigMap", "s", {hooks.HOOK: "PreSync", hooks.DELETE_POLICY: "Never"})
            )
        )


def test_generate_name_without_hook_is_a_sync_hook_with_a_warning() -> None:
    desired, found, warnings = hooks.split(prepared(obj("ConfigMap", "run-", generate=True)))
    assert desired == ()
    assert [(h.generate_name, h.phases) for h in found] == [("run-", frozenset({Phase.SYNC}))]
    assert any("ConfigMap web/run-*" in w for w in warnings)


def test_hook_in_two_phases_and_policies() -> None:
    _, found, _ = hooks.split(
        prepared(
            annotated(
                "Job",
                "both",
                {hooks.HOOK: "PreSync,PostSync", hooks.DELETE_POLICY: "HookSucceeded,HookFailed"},
                api="batch/v1",
            )
        )
    )
    assert found[0].phases == {Phase.PRE_SYNC, Phase.POST_SYNC}
    assert found[0].policies == {DeletePolicy.HOOK_SUCCEEDED, DeletePolicy.HOOK_FAILED}


def test_sync_options() -> None:
    sync = options.SYNC_OPTIONS
    chosen = options.options_of(
        annotated(
            "ConfigMap",
            "c",
            {
                sync: "Prune=false, Replace=true,Force=true,ServerSideApply=true,Validate=false,"
                "SkipDryRunOnMissingResource=true,PruneLast=true,Delete=false",
                options.COMPARE_OPTIONS: "IgnoreExtraneous",
            },
        )
    )
    assert (chosen.prune, chosen.delete, chosen.replace, chosen.force) == (False, False, True, True)
    assert chosen.ignore_extraneous and chosen.warnings == ()
    odd = options.options_of(annotated("ConfigMap", "c", {sync: "Prune=confirm,Turbo=true"}))
    assert odd.prune is True
    assert [w.split("'")[1] for w in odd.warnings] == ["Prune=confirm", "Turbo=true"]
    assert all("ConfigMap c" in w for w in odd.warnings)
    alone = options.options_of(annotated("ConfigMap", "c", {sync: "Force=true"}))
    assert not alone.force and "Force=true acts only with Replace=true" in alone.warnings[0]


def test_prune_false_holds_the_prune() -> None:
    live = annotated("ConfigMap", "keep", {options.SYNC_OPTIONS: "Prune=false"})
    live["metadata"]["namespace"] = "web"
    tracking = plan.tracking_id(app="web")
    live["metadata"]["annotations"][plan.TRACKING_ANNOTATION] = tracking
    the_plan = plan.make_plan(
        prepared(obj("ConfigMap", "other")),
        app="web",
        inventory={ObjectKey.of(live): "v1"},
        live={ObjectKey.of(live): live},
        policy=plan.PrunePolicy(small_prune=5),
    )
    assert the_plan.prunes == ()
    assert [b.reason for b in the_plan.blocked] == [
        f"annotated {options.SYNC_OPTIONS}: Prune=false: kept, never pruned"
    ]


def test_batches_namespaces_then_crds_then_the_rest() -> None:
    order = schedule_of(
        obj("ConfigMap", "c"),
        obj("CustomResourceDefinition", "things.example.com", api="apiextensions.k8s.io/v1"),
        obj("Namespace", "web"),
    )
    assert [[s.key.kind for s in b] for b in waves.batches(order[0].steps)] == [
        ["Namespace"],
        ["CustomResourceDefinition"],
        ["ConfigMap"],
    ]


def shared_namespace(name: str = "web") -> Manifest:
    manifest = obj("Namespace", name)
    manifest["metadata"]["annotations"] = {plan.SHARED_MARK_ANNOTATION: "createNamespace"}
    return manifest


def test_create_namespace_goes_before_presync_hooks() -> None:
    order = schedule_of(
        shared_namespace(),
        obj("ConfigMap", "c"),
        annotated("Job", "migrate", {hooks.HOOK: "PreSync"}, api="batch/v1"),
    )
    assert [(w.phase, w.name, names(w)) for w in order] == [
        (Phase.PRE_SYNC, "namespace wave", ["web"]),
        (Phase.PRE_SYNC, "PreSync wave 0", ["migrate"]),
        (Phase.SYNC, "sync wave 0", ["c"]),
    ]
    without = schedule_of(shared_namespace(), obj("ConfigMap", "c"))
    assert [(w.phase, w.name, names(w)) for w in without] == [
        (Phase.SYNC, "namespace wave", ["web"]),
        (Phase.SYNC, "sync wave 0", ["c"]),
    ]


def test_create_namespace_goes_before_a_negative_wave() -> None:
    order = schedule_of(
        shared_namespace(), annotated("ConfigMap", "early", {WAVE: "-1"}), obj("ConfigMap", "c")
    )
    assert [(w.name, names(w)) for w in order] == [
        ("namespace wave", ["web"]),
        ("sync wave -1", ["early"]),
        ("sync wave 0", ["c"]),
    ]
    alone = schedule_of(shared_namespace())  # nothing else to write: the Namespace alone
    assert [(w.name, names(w)) for w in alone] == [("namespace wave", ["web"])]
    resync = schedule_of(shared_namespace(), run_hooks=False)
    assert [w.name for w in resync] == ["namespace wave"]


def test_a_namespace_its_objects_precede_goes_first() -> None:
    """A Namespace of the render in wave 0 holding a ConfigMap of wave -1 goes ahead of it; one
    whose objects are all in its own wave or later stays where it is."""

    def namespaced(
        kind: str, name: str, namespace: str, notes: dict[str, str], api: str = "v1"
    ) -> Manifest:
        manifest = annotated(kind, name, notes, api=api)
        manifest["metadata"]["namespace"] = namespace
        return manifest

    order = schedule_of(
        obj("Namespace", "early-ns"),
        namespaced("ConfigMap", "first", "early-ns", {WAVE: "-1"}),
        annotated("Namespace", "late-ns", {WAVE: "2"}),
        namespaced("ConfigMap", "after", "late-ns", {WAVE: "3"}),
        obj("ConfigMap", "plain"),
    )
    assert [(w.name, names(w)) for w in order] == [
        ("namespace wave", ["early-ns"]),
        ("sync wave -1", ["first"]),
        ("sync wave 0", ["plain"]),
        ("sync wave 2", ["late-ns"]),
        ("sync wave 3", ["after"]),
    ]
    hooked = schedule_of(
        annotated("Namespace", "jobs", {WAVE: "1"}),
        namespaced("Job", "migrate", "jobs", {hooks.HOOK: "PreSync"}, api="batch/v1"),
    )
    assert [(w.name, names(w)) for w in hooked] == [
        ("namespace wave", ["jobs"]),
        ("PreSync wave 0", ["migrate"]),
    ]
