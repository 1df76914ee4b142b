"""syncPolicy as fleet and Argo CD write it: the automated flags in either place, and every
app-level syncOption read (acted on, accepted, or refused naming the option)."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleet.config import loading
from fleet.config.model import SyncPolicy


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
