"""The config schema: every field of every level, misspelt, is refused with its path and the right
name suggested; wrong types say what was expected; every error of a file comes at once, sorted;
`fleet schema` prints a valid draft 2020-12 schema that the repo's own configs satisfy."""

from __future__ import annotations

import copy
import io
import json
import re
from collections.abc import Iterator, Mapping
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from bench import many_clusters
from bench.rig import fleet_yaml as bench_fleet_yaml
from fleet.cli import main as cli_main
from fleet.config import loading, schema, validation
from fleet.errors import ConfigError
from fleet.notify import notifications_schema
from tests.hub.hubkit import fleet_yaml as hub_fleet_yaml

ROOT = Path(__file__).resolve().parents[2]

# One document of each kind holding every field the schema declares (the refused ones aside);
# test_examples_cover_every_field checks that, so a field added to the schema is covered here.
FULL = """
defaultProject: open
notifications:
  - {name: ops, type: webhook, url: https://hooks.example.com/f, secretEnv: HOOK_SECRET}
projects:
  - name: team-a
    description: team a's apps
    sourceRepos: [https://git.example.com/a/*]
    destinations:
      - {clusters: [prod-*], namespaces: [team-a-*]}
      - clusters: {names: [stage], matchLabels: {env: stage}}
        namespaces: ["*"]
    clusterResourceWhitelist: [{group: "", kind: Namespace}]
    namespaceResourceBlacklist: [{group: "", kind: ResourceQuota}]
    pruneKinds: [{group: "", kind: ConfigMap}]
apps:
  - name: web
    project: team-a
    applications: false
    source:
      repoURL: https://git.example.com/a/web.git
      targetRevision: main
      path: deploy/{{ cluster.name }}
      plugin: {name: cdk8s}
      helm:
        valueFiles: [values.yaml]
        values: "replicas: 2\\n"
        valuesObject: {image: {tag: v1}}
        parameters: [{name: image.tag, value: v2, forceString: true}]
        fileParameters: [{name: config, path: files/config.json}]
        releaseName: web
        ignoreMissingValueFiles: true
        skipCrds: true
        skipTests: true
        namespace: team-a-web
        kubeVersion: "1.30"
        apiVersions: [monitoring.coreos.com/v1]
        version: v3
        passCredentials: false
      kustomize:
        images: [nginx=nginx:1.27]
        namePrefix: blue-
        nameSuffix: -v2
        namespace: team-a-web
        commonLabels: {team: a}
        commonAnnotations: {owner: ops}
        forceCommonLabels: true
        forceCommonAnnotations: true
        labelWithoutSelector: true
        labelIncludeTemplates: true
        replicas: [{name: web, count: 3}]
        patches:
          - patch: "- {op: add, path: /x, value: 1}"
            path: patch.yaml
            target: {group: apps, version: v1, kind: Deployment, name: web, namespace: n,
                     labelSelector: a=b, annotationSelector: c=d}
            options: {allowNameChange: true, allowKindChange: false}
        components: [../components/tls]
        ignoreMissingComponents: true
        version: v5
      directory:
        recurse: true
        include: "*.yaml"
        exclude: tests/*
        jsonnet:
          extVars: [{name: env, value: prod, code: false}]
          tlas: [{name: replicas, value: "3", code: true}]
          libs: [vendor]
    destination:
      namespace: team-a-web
      clusters: {names: [prod-1], matchLabels: {env: prod}}
    syncPolicy:
      automated: {prune: true, selfHeal: true, allowEmpty: false, enabled: true}
      prune: true
      selfHeal: true
      allowEmpty: false
      forceConflicts: true
      pruneLimit: 0.5
      pruneKinds: [Namespace]
      createNamespace: true
      syncOptions: [CreateNamespace=true]
      adopt: false
      deleteAdopted: false
      retry: {limit: 5}
    ignoreDifferences:
      - {group: apps, kind: Deployment, name: web, namespace: n, jsonPointers: [/spec/replicas]}
---
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: guestbook
  namespace: argocd
  labels: {team: a}
  annotations: {note: x}
  finalizers: [resources-finalizer.argocd.argoproj.io]
  uid: 1b2c
  resourceVersion: "12"
  generation: 3
  creationTimestamp: "2026-01-01T00:00:00Z"
  managedFields: []
  ownerReferences: []
spec:
  project: team-b
  source: {repoURL: https://git.example.com/b/guestbook.git, path: guestbook}
  destination: {name: prod-1, server: https://10.0.0.1:6443, namespace: guestbook}
  syncPolicy: {automated: {}}
  ignoreDifferences: [{kind: ConfigMap, jsonPointers: [/data]}]
  info: [{name: url, value: https://example.com}]
  revisionHistoryLimit: 10
status: {sync: {status: Synced}}
---
apiVersion: argoproj.io/v1alpha1
kind: AppProject
metadata: {name: team-b, namespace: argocd}
spec:
  description: team b
  sourceRepos: ["*"]
  destinations: [{name: prod-*, server: "*", namespace: guestbook}]
  clusterResourceWhitelist: [{group: "", kind: Namespace}]
  namespaceResourceBlacklist: [{group: "", kind: LimitRange}]
  pruneKinds: [{group: "", kind: ConfigMap}]
status: {}
"""

Path_ = tuple[str, ...]


def _def_of(node: Mapping[str, Any]) -> str | None:
    ref = node.get("$ref")
    return str(ref).rsplit("/", 1)[-1] if ref else None


def _declared(node: Mapping[str, Any], at: Path_) -> Iterator[Path_]:
    """Every property path the schema declares under `node`, relative to its definition (a
    shared definition is walked as its own root); refused fields left out."""
    if _def_of(node):
        return
    for key, sub in node.get("properties", {}).items():
        if "not" in sub:
            continue
        yield (*at, key)
        yield from _declared(sub, (*at, key))
    if isinstance(node.get("items"), Mapping):
        yield from _declared(node["items"], (*at, "[]"))


def _root(document: Mapping[str, Any]) -> str:
    return {"Application": "Application", "AppProject": "AppProject"}.get(
        str(document.get("kind")), "FleetDocument"
    )


def _present(
    value: Any, node: Mapping[str, Any], defs: Mapping[str, Any], at: Path_, where: tuple[Any, ...]
) -> Iterator[tuple[Path_, tuple[Any, ...]]]:
    """(schema path, instance path) of every key of `value` that the schema closes."""
    name = _def_of(node)
    if name:
        node, at = defs[name], (name,)
    if isinstance(value, Mapping) and node.get("additionalProperties") is False:
        for key, item in value.items():
            yield (*at, key), (*where, key)
            yield from _present(item, node["properties"][key], defs, (*at, key), (*where, key))
    if isinstance(value, list) and isinstance(node.get("items"), Mapping):
        for index, item in enumerate(value):
            yield from _present(item, node["items"], defs, (*at, "[]"), (*where, index))


def _documents() -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(FULL) if d]


def _occurrences() -> list[tuple[int, Path_, tuple[Any, ...]]]:
    defs = schema.document_schema()["$defs"]
    found = []
    for index, document in enumerate(_documents()):
        root = _root(document)
        for at, where in _present(document, defs[root], defs, (root,), ()):
            found.append((index, at, where))
    return found


def test_examples_cover_every_field() -> None:
    defs = schema.document_schema()["$defs"]
    declared = {path for name, node in defs.items() for path in _declared(node, (name,))}
    declared -= {p for p in declared if p[:2] == ("FleetDocument", "notifications") and len(p) > 2}
    present = {at for _, at, _ in _occurrences()}
    assert declared - present == set(), "add these fields to FULL"
    assert len(declared) > 120


def test_full_example_loads() -> None:
    config = loading.load_documents(FULL, "full.yaml")
    assert [a.name for a in config.apps] == ["web", "guestbook"]
    assert {p.name for p in config.projects} == {"team-a", "team-b"}


def near_miss(word: str) -> str:
    """`word` with its middle letter dropped (or doubled, for words of three letters or less)."""
    middle = len(word) // 2
    if len(word) <= 3:
        return word[: middle + 1] + word[middle:]
    return word[:middle] + word[middle + 1 :]


def _dotted(where: tuple[Any, ...]) -> str:
    text = ""
    for part in where:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _renamed(value: Any, where: tuple[Any, ...], new: str) -> Any:
    """A copy of `value` with the key at `where` renamed to `new`, its place in order kept."""
    if len(where) == 1:
        return {(new if k == where[0] else k): v for k, v in value.items()}
    out = copy.copy(value)
    out[where[0]] = _renamed(value[where[0]], where[1:], new)
    return out


CASES = _occurrences()


@pytest.mark.parametrize(
    ("index", "where"),
    [(i, w) for i, _, w in CASES],
    ids=[f"{i}:{_dotted(w)}" for i, _, w in CASES],
)
def test_every_misspelt_field_is_refused_with_its_path_and_the_right_name(
    index: int, where: tuple[Any, ...]
) -> None:
    documents = _documents()
    key = str(where[-1])
    miss = near_miss(key)
    documents[index] = _renamed(documents[index], where, miss)
    text = yaml.dump_all(documents, Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper))
    with pytest.raises(ConfigError) as caught:
        loading.load_documents(text, "fleet.yaml")
    path = _dotted((*where[:-1], miss))
    expected = f"{path}: unknown field (did you mean {key}?)"
    assert expected in str(caught.value), str(caught.value)
    assert f"fleet.yaml (document {index + 1}" in str(caught.value)


def test_wrong_types_say_what_was_expected_and_every_error_comes_sorted(tmp_path: Path) -> None:
    path = tmp_path / "fleet.yaml"
    path.write_text(
        """
apps:
  - name: b
    source: {repoURL: https://git.example.com/b.git, targetRevison: main}
    destination: {namespace: b, cluster: {names: [x]}}
    syncPolicy: {prune: "yes", selfheal: true, pruneLimit: 2}
  - name: a
    source: {repoURL: https://git.example.com/a.git, targetRevision: 1.10}
    destination: {namespace: a}
    syncPolicy: {automated: sometimes}
"""
    )
    with pytest.raises(ConfigError) as caught:
        loading.load(path)
    lines = str(caught.value).splitlines()
    assert lines[0] == f"7 errors in {path}:"
    assert lines[1:] == [
        f"{path}: apps[0].destination.cluster: unknown field (did you mean clusters?)",
        f"{path}: apps[0].source.targetRevison: unknown field (did you mean targetRevision?)",
        f"{path}: apps[0].syncPolicy.prune: expected true/false, got 'yes'",
        f"{path}: apps[0].syncPolicy.pruneLimit: expected <= 1, got 2",
        f"{path}: apps[0].syncPolicy.selfheal: unknown field (did you mean selfHeal?)",
        f"{path}: apps[1].source.targetRevision: expected a string, got 1.1 (quote it)",
        f"{path}: apps[1].syncPolicy.automated: expected true/false or a mapping, got 'sometimes'",
    ]


def test_refused_fields_say_what_to_do_and_nulls_are_absent() -> None:
    text = """
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: web}
spec:
  source: {repoURL: https://git.example.com/w.git, chart: nginx}
  sources: []
  destination: {name: c1, namespace: web}
  syncPolicy:
"""
    lines = validation.errors(list(yaml.safe_load_all(text)), origin="app.yaml")
    assert lines == [
        "app.yaml (Application web): spec.source.chart: charts from a Helm repository are not "
        "supported; commit the chart to a git repository and name it with repoURL and path",
        "app.yaml (Application web): spec.sources: multi-source Applications are not "
        "supported; use source",
    ]
    assert validation.errors([{"apps": [], "note": 1}], origin="f.yaml") == [
        "f.yaml: note: unknown field (fields here: apps, defaultProject, notifications, projects)"
    ]
    assert validation.errors([{}], origin="f.yaml") == [
        "f.yaml: expected `apps:`, `projects:` or an Argo CD Application"
    ]


def _printed(*argv: str) -> str:
    out = io.StringIO()
    with redirect_stdout(out):
        assert cli_main.main(list(argv)) == 0
    return out.getvalue()


def _repo_configs() -> Iterator[tuple[str, str]]:
    """The fleet.yaml texts the repo itself writes: README, the demo's example, bench, hubkit."""
    readme = (ROOT / "README.md").read_text()
    for index, block in enumerate(re.findall(r"```yaml\n(.*?)```", readme, re.S)):
        if re.search(r"(?m)^(apps|projects|notifications):", block) or "kind: Application" in block:
            yield f"README.md yaml block {index + 1}", block
    yield "examples/config-repo/fleet.yaml", (ROOT / "examples/config-repo/fleet.yaml").read_text()
    yield "bench/rig.py fleet_yaml", bench_fleet_yaml("file:///srv/r.git", namespace="n")
    yield "tests/hub/hubkit.py fleet_yaml", hub_fleet_yaml("file:///srv/r.git", "n")
    for layout in ("shared-app", "per-entry"):
        text = many_clusters._config("file:///srv/r.git", ["e1", "e2"], layout=layout)
        yield f"bench/many_clusters.py {layout}", text


def test_fleet_schema_is_a_valid_schema_that_the_repo_configs_satisfy() -> None:
    printed = json.loads(_printed("schema"))
    jsonschema.Draft202012Validator.check_schema(printed)
    assert printed["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    notifications = printed["$defs"]["FleetDocument"]["properties"]["notifications"]
    assert notifications == notifications_schema(), "the notifier's own schema is spliced in"
    validator = jsonschema.Draft202012Validator(printed)
    configs = list(_repo_configs())
    assert len(configs) >= 6
    for name, text in configs:
        for document in yaml.safe_load_all(text):
            if document:
                problems = [e.message for e in validator.iter_errors(document)]
                assert problems == [], name
    bad = {"apps": [{"name": "w", "source": {"repoURL": "x"}, "destination": {"namespace": "n"}}]}
    bad["apps"][0]["syncPolicy"] = {"prun": True}
    assert not validator.is_valid(bad)
    assert not validator.is_valid({"notifications": [{"name": "x", "type": "webhok"}]})


def test_docs_config_md_is_the_generated_reference() -> None:
    printed = _printed("schema", "--format", "markdown")
    assert (ROOT / "docs/config.md").read_text() == printed, (
        "regenerate: fleet schema --format markdown > docs/config.md"
    )
    assert "| `targetRevision` | string |" in printed
    assert "### `notifications[]`" in printed and "| `secretEnv` |" in printed


def test_the_issue_typos_and_a_field_one_level_off() -> None:
    app: dict[str, Any] = {
        "name": "a",
        "source": {"repoURL": "x"},
        "destination": {"namespace": "n"},
    }
    typos = copy.deepcopy(app)
    typos["destination"]["cluster"] = {"names": ["prod"]}
    typos["source"]["targetRevison"] = "main"
    typos["syncPolicy"] = {"prun": True, "selfheal": True}
    typos["prune"] = True
    assert validation.errors([{"apps": [typos]}], origin="f.yaml") == [
        "f.yaml: apps[0].destination.cluster: unknown field (did you mean clusters?)",
        "f.yaml: apps[0].prune: unknown field (did you mean syncPolicy.prune?)",
        "f.yaml: apps[0].source.targetRevison: unknown field (did you mean targetRevision?)",
        "f.yaml: apps[0].syncPolicy.prun: unknown field (did you mean prune?)",
        "f.yaml: apps[0].syncPolicy.selfheal: unknown field (did you mean selfHeal?)",
    ]
    with pytest.raises(ConfigError, match=r"^f.yaml: apps\[0\].zzz: unknown field \(fields here: "):
        validation.check([{"apps": [{**app, "zzz": 1}]}], origin="f.yaml")
