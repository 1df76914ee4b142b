"""fleet.yaml and Argo CD Applications load into one model; bad config names file, app, field."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from fleet.config import loading
from fleet.errors import ConfigError
from fleet.types import ClusterRef

FLEET_YAML = """
apps:
  - name: webapp
    source:
      repoURL: https://git.example.com/team/gitops-webapp.git
      targetRevision: main
      path: deployment/{{ cluster.labels.env }}
    destination:
      namespace: prod
      clusters: {matchLabels: {env: prod}}
    syncPolicy: {prune: true, selfHeal: true}
  - name: monitoring
    source: {repoURL: file:///srv/git/mon.git, path: charts/mon,
             helm: {valueFiles: [values.yaml], values: {cluster: "{{ cluster.name }}"}}}
    destination: {namespace: monitoring, clusters: {names: [prod-eu, prod-us]}}
    ignoreDifferences:
      - {group: apps, kind: Deployment, jsonPointers: [/spec/replicas]}
"""

ARGO_APP = """
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: guestbook, namespace: argocd}
spec:
  project: default
  source:
    repoURL: https://github.com/argoproj/argocd-example-apps.git
    targetRevision: HEAD
    path: guestbook
  destination: {name: prod-eu, namespace: guestbook}
  syncPolicy:
    automated: {prune: true, selfHeal: false}
"""


def _write(tmp_path: Path, text: str, name: str = "fleet.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_fleet_yaml(tmp_path: Path) -> None:
    config = loading.load(_write(tmp_path, FLEET_YAML))
    web = config.app("webapp")
    assert web is not None
    assert web.source.target_revision == "main"
    assert web.source.path == "deployment/{{ cluster.labels.env }}"
    assert web.sync_policy.prune and web.sync_policy.self_heal
    assert not web.sync_policy.allow_empty
    prod = ClusterRef("prod-eu", {"env": "prod"})
    assert web.destination.clusters.matches(prod)
    assert not web.destination.clusters.matches(ClusterRef("dev", {"env": "dev"}))
    mon = config.app("monitoring")
    assert mon is not None and mon.source.helm is not None
    assert mon.source.helm.value_files == ("values.yaml",)
    assert mon.source.target_revision == "HEAD"
    assert not mon.sync_policy.prune, "prune is off unless the app turns it on"
    assert mon.destination.clusters.matches(prod)
    assert not mon.destination.clusters.matches(ClusterRef("staging"))
    assert mon.ignore_differences[0].json_pointers == ("/spec/replicas",)


def test_argo_application_and_directory(tmp_path: Path) -> None:
    _write(tmp_path, FLEET_YAML, "a.yaml")
    _write(tmp_path, ARGO_APP, "b.yml")
    config = loading.load(tmp_path)
    assert [a.name for a in config.apps] == ["webapp", "monitoring", "guestbook"]
    guestbook = config.app("guestbook")
    assert guestbook is not None
    assert guestbook.destination.namespace == "guestbook"
    assert guestbook.destination.clusters.names == ("prod-eu",)
    assert guestbook.sync_policy.prune and not guestbook.sync_policy.self_heal


def test_argo_destination_by_server(tmp_path: Path) -> None:
    text = ARGO_APP.replace(
        "{name: prod-eu, namespace: guestbook}",
        "{server: 'https://10.0.0.1:6443', namespace: guestbook}",
    )
    app = loading.load(_write(tmp_path, text)).apps[0]
    cluster = ClusterRef("anything")
    assert app.destination.clusters.matches(cluster, server="https://10.0.0.1:6443/")
    assert not app.destination.clusters.matches(cluster, server="https://10.0.0.2:6443")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            ("repoURL: https://git.example.com/team/gitops-webapp.git", "repoURL: [1]"),
            r"fleet.yaml: apps\[0\].source.repoURL: expected a string, got a list",
        ),
        (
            ("namespace: prod\n", "namespace:\n"),
            r"fleet.yaml: apps\[0\].destination.namespace: required",
        ),
        (
            ("{{ cluster.labels.env }}", "{{ cluster.region }}"),
            r"apps\[0\] \(webapp\).source.path: unknown placeholder \{\{ cluster.region \}\}",
        ),
        (
            ("path: deployment/", "path: ../../etc/"),
            r"source.path: '../../etc/.*' must stay inside the repository",
        ),
        (("name: monitoring", "name: webapp"), r"app 'webapp' is also declared"),
        (
            ("name: monitoring", "name: Mon_itoring"),
            r"apps\[1\].name: 'Mon_itoring' is not a valid",
        ),
        (
            ("prune: true, selfHeal", "prune: yes please, selfHeal"),
            r"apps\[0\].syncPolicy.prune: expected true/false, got 'yes please'",
        ),
        (
            ("jsonPointers: [/spec/replicas]", "jsonPointers: [spec]"),
            r"ignoreDifferences\[0\].jsonPointers\[0\]: 'spec' must start with '/'",
        ),
    ],
)
def test_bad_config_names_file_app_and_field(
    tmp_path: Path, edit: tuple[str, str], message: str
) -> None:
    old, new = edit
    assert old in FLEET_YAML
    with pytest.raises(ConfigError, match=message):
        loading.load(_write(tmp_path, FLEET_YAML.replace(old, new, 1)))


def test_invalid_yaml_and_unknown_documents(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"fleet.yaml: invalid YAML"):
        loading.load(_write(tmp_path, "apps: [\n"))
    with pytest.raises(ConfigError, match=r"expected `apps:` or an Argo CD Application"):
        loading.load(_write(tmp_path, "kind: Deployment\n"))
    with pytest.raises(ConfigError, match=r"needs apiVersion argoproj.io"):
        loading.load(_write(tmp_path, ARGO_APP.replace("argoproj.io/v1alpha1", "v1")))
    with pytest.raises(ConfigError, match=r"cannot read"):
        loading.load(tmp_path / "missing.yaml")


def test_destination_namespace_may_name_the_cluster(tmp_path: Path) -> None:
    text = FLEET_YAML.replace("namespace: prod\n", "namespace: 'web-{{ cluster.name }}'\n")
    app = loading.load(_write(tmp_path, text)).app("webapp")
    assert app is not None and app.destination.namespace == "web-{{ cluster.name }}"
    bad = FLEET_YAML.replace("namespace: prod\n", "namespace: 'web-{{ cluster.zone }}'\n")
    with pytest.raises(ConfigError, match=r"destination.namespace: unknown placeholder"):
        loading.load(_write(tmp_path, bad))


def test_create_namespace_in_fleet_and_argo_words(tmp_path: Path) -> None:
    text = FLEET_YAML.replace(
        "syncPolicy: {prune: true, selfHeal: true}",
        "syncPolicy: {prune: true, createNamespace: true}",
    )
    app = loading.load(_write(tmp_path, text)).app("webapp")
    assert app is not None and app.sync_policy.create_namespace
    argo = ARGO_APP.replace(
        "automated: {prune: true, selfHeal: false}",
        "automated: {prune: true}\n    syncOptions: [CreateNamespace=true]",
    )
    guestbook = loading.load(_write(tmp_path, argo)).apps[0]
    assert guestbook.sync_policy.create_namespace
    assert not loading.load(_write(tmp_path, ARGO_APP)).apps[0].sync_policy.create_namespace


def test_automated_sync_as_argo_cd_and_fleet_mean_it(tmp_path: Path) -> None:
    """fleet.yaml apps are automated unless they say otherwise; an Argo CD Application is
    automated only with syncPolicy.automated (a mapping, even an empty one)."""
    path = tmp_path / "apps.yaml"
    manual_argo = ARGO_APP.split("  syncPolicy:", maxsplit=1)[0]  # no syncPolicy at all
    empty_automated = (
        manual_argo.replace("name: guestbook", "name: guestbook-auto")
        + "  syncPolicy:\n    automated: {}\n"
    )
    path.write_text(
        FLEET_YAML
        + "  - name: held\n    source: {repoURL: file:///srv/x.git}\n"
        + "    destination: {namespace: held}\n    syncPolicy: {automated: false}\n"
        + "---\n"
        + manual_argo
        + "---\n"
        + empty_automated
    )
    disabled = (
        manual_argo.replace("name: guestbook", "name: guestbook-off")
        + "  syncPolicy:\n    automated: {prune: true, enabled: false}\n"
    )
    path.write_text(path.read_text() + "---\n" + disabled)
    apps = {a.name: a for a in loading.load(path).apps}
    assert not apps["guestbook-off"].sync_policy.automated, "Argo CD 3's automated.enabled"
    assert apps["webapp"].sync_policy.automated
    assert not apps["held"].sync_policy.automated
    assert not apps["guestbook"].sync_policy.automated
    assert apps["guestbook-auto"].sync_policy.automated
    path.write_text(FLEET_YAML.replace("{prune: true, selfHeal: true}", "{automated: sometimes}"))
    with pytest.raises(
        ConfigError,
        match=r"syncPolicy.automated: expected true/false or a mapping, got 'sometimes'",
    ):
        loading.load(path)


def test_load_documents_reads_text_from_git_naming_its_origin(tmp_path: Path) -> None:
    origin = "https://git.example.com/cfg.git@0a1b2c3:apps/x.yaml"
    config = loading.load_documents(FLEET_YAML + "---\n" + ARGO_APP, origin)
    assert [a.name for a in config.apps] == ["webapp", "monitoring", "guestbook"]
    assert {a.origin for a in config.apps} == {origin}
    from_disk = loading.load(_write(tmp_path, FLEET_YAML + "---\n" + ARGO_APP))
    assert config.apps == tuple(dataclasses.replace(a, origin=origin) for a in from_disk.apps)
    with pytest.raises(ConfigError, match=r"^https://git.example.com/cfg.git@0a1b2c3:apps/x.yaml"):
        loading.load_documents("apps: [\n", origin)
    with pytest.raises(ConfigError, match=r"apps/x.yaml.*selfHeal"):
        loading.load_documents(FLEET_YAML.replace("selfHeal: true", "selfHeal: 3"), origin)


def test_a_parent_app_says_so_in_fleet_yaml_or_by_annotation(tmp_path: Path) -> None:
    parent = FLEET_YAML.replace(
        "  - name: monitoring\n", "  - name: monitoring\n    applications: true\n"
    )
    argo = ARGO_APP.replace(
        "metadata: {name: guestbook, namespace: argocd}",
        "metadata:\n  name: guestbook\n  annotations: {fleet.dev/applications: 'true'}",
    )
    apps = {a.name: a for a in loading.load(_write(tmp_path, parent + "---\n" + argo)).apps}
    assert apps["monitoring"].applications and apps["guestbook"].applications
    assert not apps["webapp"].applications
    assert not loading.load(_write(tmp_path, ARGO_APP)).apps[0].applications


def test_a_clusters_candidate_apps_are_those_naming_it_and_those_naming_none(
    tmp_path: Path,
) -> None:
    text = FLEET_YAML + (
        "  - name: eu-only\n"
        "    source: {repoURL: file:///srv/git/eu.git, path: eu}\n"
        "    destination: {namespace: eu, clusters: {names: [prod-eu, prod-eu]}}\n"
        "  - name: everywhere\n"
        "    source: {repoURL: file:///srv/git/all.git, path: all}\n"
        "    destination: {namespace: all}\n"
    )
    config = loading.load(_write(tmp_path, text))

    def names(cluster: str) -> list[str]:
        return [a.name for a in config.apps_that_may_select(cluster)]

    assert names("prod-eu") == ["webapp", "monitoring", "eu-only", "everywhere"], "as declared"
    assert names("prod-us") == ["webapp", "monitoring", "everywhere"]
    assert names("dev") == ["webapp", "everywhere"], "labels and servers are matched later"
    # never fewer than a scan of every app would select
    for cluster in ("prod-eu", "prod-us", "dev"):
        ref = ClusterRef(cluster, {"env": "prod"})
        scanned = [a.name for a in config.apps if a.destination.clusters.matches(ref)]
        assert set(scanned) <= set(names(cluster))
