"""Projects in the config: parsed with errors that say where, resolved onto each app; the
default project allows everything unless the config makes it strict."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from fleet.config import loading
from fleet.config.projects import OPEN_DEFAULT, STRICT_DEFAULT, KindRule
from fleet.errors import ConfigError
from fleet.plan import projects
from fleet.plan.preparing import prepare
from fleet.types import ClusterRef, ObjectKey

APP = """
  - name: {name}
    {project}
    source: {{repoURL: "https://git.example.com/a/web.git"}}
    destination: {{namespace: web}}
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "fleet.yaml"
    path.write_text(text)
    return path


def test_default_project_allows_everything_and_strict_allows_nothing(tmp_path: Path) -> None:
    (app,) = loading.load(_write(tmp_path, "apps:" + APP.format(name="web", project=""))).apps
    assert app.project == "default" and app.project_rules == OPEN_DEFAULT
    strict = "defaultProject: strict\napps:" + APP.format(name="web", project="")
    (app,) = loading.load(_write(tmp_path, strict)).apps
    assert app.project_rules == STRICT_DEFAULT
    assert projects.source_refusal(app.project_rules, app.source.repo_url) is not None


def test_projects_parse_and_resolve(tmp_path: Path) -> None:
    text = """
projects:
  - name: team-a
    sourceRepos: ["https://git.example.com/a/*"]
    destinations:
      - clusters: [prod-*]
        namespaces: [web, "web-*"]
      - clusters: {matchLabels: {env: staging}}
        namespaces: ["*"]
    clusterResourceWhitelist: [{group: "", kind: Namespace}]
    namespaceResourceBlacklist: [{kind: ResourceQuota}]
    pruneKinds: [{kind: ConfigMap}]
apps:""" + APP.format(name="web", project="project: team-a")
    config = loading.load(_write(tmp_path, text))
    (app,) = config.apps
    rules = app.project_rules
    assert config.project("team-a") == rules and rules.prune_kinds == (KindRule("*", "ConfigMap"),)
    assert projects.source_refusal(rules, "https://git.example.com/a/web.git") is None
    assert "sourceRepos" in (projects.source_refusal(rules, "https://evil.example/x.git") or "")
    prod, staging = ClusterRef("prod-1"), ClusterRef("s-1", {"env": "staging"})
    cm = ObjectKey("", "ConfigMap", "web-2", "c")
    assert projects.object_refusal(rules, cm, cluster=prod) is None
    elsewhere = ObjectKey("", "ConfigMap", "other", "c")
    assert "not a destination" in (projects.object_refusal(rules, elsewhere, cluster=prod) or "")
    assert projects.object_refusal(rules, elsewhere, cluster=staging) is None
    role = ObjectKey("rbac.authorization.k8s.io", "ClusterRole", "", "r")
    assert "clusterResourceWhitelist" in (projects.object_refusal(rules, role, cluster=prod) or "")
    quota = ObjectKey("", "ResourceQuota", "web", "q")
    assert "Blacklist" in (projects.object_refusal(rules, quota, cluster=prod) or "")
    secret = ObjectKey("", "Secret", "web", "s")
    holds = projects.prune_refusals(rules, [cm, secret], cluster=prod)
    assert set(holds) == {secret} and "pruneKinds" in holds[secret]
    (ns,) = prepare(
        [
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": "kube-system", "annotations": {"fleet.dev/added-for": "x"}},
            }
        ],
        app="web",
        namespace="kube-system",
        scopes={("", "Namespace"): False},
    )
    (refused,) = projects.refusals(rules, [ns], cluster=prod)
    assert "kube-system" in refused.reason


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("apps:" + APP.format(name="web", project="project: nope"), "names project 'nope'"),
        (
            "defaultProject: loose\napps: []",
            "defaultProject: expected one of open, strict, got 'loose'",
        ),
        (
            "projects: [{name: p, destinations: [{clusters: [a]}]}]\napps: []",
            "fleet.yaml: projects[0].destinations[0].namespaces: required",
        ),
        ("projects: [{name: p}, {name: p}]\napps: []", "project 'p' is also declared"),
        (
            "projects: [{name: p, clusterResourceWhitelist: x}]",
            "projects[0].clusterResourceWhitelist: expected a list, got 'x'",
        ),
    ],
)
def test_bad_projects_name_the_file_and_field(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        loading.load(_write(tmp_path, text))


def test_argo_app_project_and_application(tmp_path: Path) -> None:
    text = """
apiVersion: argoproj.io/v1alpha1
kind: AppProject
metadata: {name: team-a}
spec:
  sourceRepos: ["https://git.example.com/a/*"]
  destinations:
    - {name: "prod-*", namespace: "web-*"}
    - {server: "*", namespace: tools}
  clusterResourceWhitelist: [{group: "", kind: Namespace}]
---
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: web}
spec:
  project: team-a
  source: {repoURL: "https://git.example.com/a/web.git", path: "."}
  destination: {name: prod-1, namespace: web-1}
"""
    (app,) = loading.load(_write(tmp_path, text)).apps
    rules = app.project_rules
    assert app.project == "team-a" and rules.name == "team-a"
    prod, dev = ClusterRef("prod-1"), ClusterRef("dev-1")
    assert (
        projects.object_refusal(rules, ObjectKey("", "ConfigMap", "web-1", "c"), cluster=prod)
        is None
    )
    assert projects.object_refusal(rules, ObjectKey("", "ConfigMap", "web-1", "c"), cluster=dev)
    assert (
        projects.object_refusal(rules, ObjectKey("", "ConfigMap", "tools", "c"), cluster=dev)
        is None
    )
    bad = text.replace(
        '{server: "*", namespace: tools}', "{server: https://k8s.example, namespace: x}"
    )
    with pytest.raises(ConfigError, match=r"destinations\[1\].server: name the cluster"):
        loading.load(_write(tmp_path, bad))
