"""syncPolicy as fleet and Argo CD write it: the automated flags in either place, and every
app-level syncOption read (acted on, accepted, or refused naming the option)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest

from fleet.config import loading
from fleet.config.model import SyncPolicy
from fleet.errors import ConfigError


def _fleet(tmp_path: Path, policy: str) -> SyncPolicy:
    path = tmp_path / "fleet.yaml"
    path.write_text(
        "apps:\n  - name: a\n    source: {repoURL: https://git.example/a.git, path: a}\n"
        f"    destination: {{namespace: a}}\n    syncPolicy: {policy}\n"
    )
    (app,) = loading.load(path).apps
    return app.sync_policy


def _argo(tmp_path: Path, policy: str) -> SyncPolicy:
    path = tmp_path / "app.yaml"
    path.write_text(
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {name: a}\nspec:\n"
        "  source: {repoURL: https://git.example/a.git, path: a}\n"
        f"  destination: {{name: c, namespace: a}}\n  syncPolicy: {policy}\n"
    )
    (app,) = loading.load(path).apps
    return app.sync_policy


@pytest.mark.parametrize(
    ("policy", "prune", "self_heal"),
    [
        # fleet's own words, then Argo CD's, then both: keys under automated win
        ("{prune: true, selfHeal: true}", True, True),
        ("{automated: {prune: true, selfHeal: true}}", True, True),
        ("{automated: {selfHeal: true}, prune: true}", True, True),
        ("{automated: {prune: false}, prune: true, selfHeal: true}", False, True),
        ("{automated: {}, prune: true}", True, False),
        ("{automated: true, prune: true}", True, False),
        ("{}", False, False),
    ],
)
def test_automated_flags_merge_fleet_and_argo_words(
    tmp_path: Path, policy: str, prune: bool, self_heal: bool
) -> None:
    loaded = _fleet(tmp_path, policy)
    assert (loaded.prune, loaded.self_heal) == (prune, self_heal)
    assert loaded.automated


def test_an_argo_application_reads_automated_prune_and_self_heal(tmp_path: Path) -> None:
    loaded = _argo(tmp_path, "{automated: {prune: true, selfHeal: true, allowEmpty: true}}")
    assert (loaded.prune, loaded.self_heal, loaded.allow_empty, loaded.automated) == (
        True,
        True,
        True,
        True,
    )
    manual = _argo(tmp_path, "{syncOptions: [CreateNamespace=true]}")
    assert (manual.prune, manual.self_heal, manual.automated) == (False, False, False)


@pytest.mark.parametrize("load", [_fleet, _argo])
def test_sync_options_fleet_acts_on(
    load: Callable[[Path, str], SyncPolicy], tmp_path: Path
) -> None:
    created = load(tmp_path, "{automated: {prune: true}, syncOptions: [CreateNamespace=true]}")
    assert created.create_namespace and created.prune
    held = load(tmp_path, "{automated: {prune: true}, syncOptions: [Prune=false]}")
    assert not held.prune and not held.create_namespace


def test_harmless_sync_options_are_accepted_silently(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    options = (
        "ServerSideApply=true, Validate=false, ApplyOutOfSyncOnly=true, PruneLast=true, "
        "SkipDryRunOnMissingResource=true, FailOnSharedResource=true, "
        "PrunePropagationPolicy=background, RespectIgnoreDifferences=false, Replace=false, "
        "CreateNamespace=false, Delete=false"
    )
    with caplog.at_level(logging.WARNING):
        loaded = _argo(tmp_path, f"{{automated: {{prune: true}}, syncOptions: [{options}]}}")
    assert loaded.prune and not loaded.create_namespace
    assert not [r for r in caplog.records if "sync_option" in r.getMessage()]


def test_sync_options_that_differ_harmlessly_warn_on_load(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    options = "[PrunePropagationPolicy=foreground, RespectIgnoreDifferences=true]"
    with caplog.at_level(logging.WARNING, logger="fleet.config.loading"):
        loaded = _argo(tmp_path, f"{{automated: {{prune: true}}, syncOptions: {options}}}")
    assert loaded.prune
    messages = [r.getMessage() for r in caplog.records]
    assert any(
        "syncOptions[0]: PrunePropagationPolicy=foreground is accepted: fleet prunes with "
        "background propagation" in m
        for m in messages
    )
    assert any("syncOptions[1]: RespectIgnoreDifferences=true is accepted" in m for m in messages)
    assert all(m.startswith("event=config_sync_option_differs ") for m in messages)


@pytest.mark.parametrize(
    ("option", "error"),
    [
        (
            "PrunePropagationPolicy=orphan",
            r"syncPolicy\.syncOptions\[0\]: PrunePropagationPolicy=orphan is not supported: "
            r"fleet prunes with background propagation",
        ),
        ("Replace=true", r"Replace=true is not supported: fleet applies server-side; put Replace"),
        ("Force=true", r"Force=true is not supported: .*Replace=true,Force=true"),
        ("Prune=confirm", r"Prune=confirm is not supported: fleet has no prune confirmation"),
        ("createNamespace=true", r"unknown sync option 'createNamespace'; did you mean "),
        ("Recreate=true", r"unknown sync option 'Recreate'; fleet knows ApplyOutOfSyncOnly, "),
        (
            "CreateNamespace=yes",
            r"'CreateNamespace=yes' is not a value fleet knows; write CreateNamespace=false or "
            r"CreateNamespace=true",
        ),
        ("CreateNamespace", r"'CreateNamespace' is not an Argo CD sync option; write Name=value"),
    ],
)
def test_other_sync_options_are_refused_naming_the_option(
    tmp_path: Path, option: str, error: str
) -> None:
    for load in (_fleet, _argo):
        with pytest.raises(ConfigError, match=error) as caught:
            load(tmp_path, f"{{syncOptions: ['{option}']}}")
        assert str(caught.value).startswith(str(tmp_path))  # the file at fault
