"""A render reads nothing outside the app's own tree, whatever the links of the repository say.

Each case commits real symlinks to a real git repository and renders through the whole pipeline
(mirror, plan, extract, render) with the real helm and kustomize: the render is refused with a
StalledError naming the link's repository path, and the secret planted in a directory standing
for the hub's cache, state or clusters directory appears in no output.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from fleet.cache import CacheSettings, ManifestCache
from fleet.controlplane.binaries import ensure_tool
from fleet.errors import StalledError
from fleet.reconcile.desired import AppSource, Desired, DesiredState
from fleet.render import HelmOptions, Renderer, RenderSettings, confine
from fleet.settings import default_cache_dir
from fleet.sources import Sources, SourceSettings
from fleet.types import ClusterRef, canonical_json
from tests.render.linkkit import chain
from tests.sources.gitkit import Remote

CLUSTER = ClusterRef("c1", {"env": "prod"})
SECRET = "s3cr3t-hub-credential-7f1c"
CHART = {"chart/Chart.yaml": "apiVersion: v2\nname: web\nversion: 0.1.0\n"}


def leak_template(expr: str) -> str:
    """A chart template that puts `expr`'s text into a ConfigMap."""
    return (
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: leak}\n"
        f"data:\n  text: {{{{ {expr} | quote }}}}\n"
    )


GLOB_TEMPLATE = """apiVersion: v1
kind: ConfigMap
metadata: {name: leak}
data:
  text: |
    {{- range $path, $_ := .Files.Glob "files/hub/*" }}
    {{- $.Files.Get $path | nindent 4 }}
    {{- end }}
"""


class Hub:
    """A pipeline whose cache lies in ``hub/cache``, next to ``hub/state`` and ``hub/clusters``,
    each holding a secret the way the hub's own directories do."""

    def __init__(self, tmp_path: Path) -> None:
        self.root = tmp_path / "hub"
        self.secrets: dict[str, Path] = {}
        for name in ("cache", "state", "clusters"):
            directory = self.root / name
            directory.mkdir(parents=True)
            secret = directory / "secret.yaml"
            secret.write_text(
                f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: stolen-{name}}}\n"
                f"data: {{token: {SECRET}-{name}}}\n"
            )
            self.secrets[name] = secret
        self.state = DesiredState(
            sources=Sources(SourceSettings(cache_dir=self.root / "cache", interval=0.0)),
            renderer=Renderer(
                RenderSettings(helm=ensure_tool("helm", cache_dir=default_cache_dir()))
            ),
            cache=ManifestCache(CacheSettings(root=self.root / "cache" / "render")),
        )

    async def refused(self, app: AppSource, *, naming: str) -> StalledError:
        """Render `app`: a StalledError naming `naming`, and no secret anywhere in the outcome."""
        got = await self.state.desired(app, CLUSTER)
        assert isinstance(got.error, StalledError), got.error
        assert naming in str(got.error), got.error
        assert_no_secret(got)
        return got.error


def assert_no_secret(got: Desired) -> None:
    rendered = canonical_json(list(got.rendered.objects)) if got.rendered else b""
    assert SECRET.encode() not in rendered
    assert SECRET not in str(got.error)


def chart_app(**helm: object) -> AppSource:
    options = HelmOptions(release="web", **helm)  # type: ignore[arg-type]
    return AppSource(name="web", repo_url="", path="chart", helm=options)


def at(app: AppSource, remote: Remote) -> AppSource:
    return AppSource(
        name=app.name, repo_url=remote.url, revision="main", path=app.path, helm=app.helm
    )


# -- the chain of the report, for every renderer ----------------------------------------------


@pytest.mark.anyio
async def test_chain_helm_files_get(tmp_path: Path) -> None:
    hub, remote = Hub(tmp_path), Remote(tmp_path)
    remote.commit(CHART)
    esc = chain(remote, base="chart", target=hub.secrets["state"])
    rel = esc.removeprefix("chart/")
    remote.commit({"chart/templates/cm.yaml": leak_template(f'.Files.Get "{rel}"')})
    error = await hub.refused(at(chart_app(), remote), naming=repr(esc))
    assert "escapes the repository" in str(error)


@pytest.mark.anyio
async def test_chain_is_real_without_the_tree_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The control: with the tree check switched off, the same chart does read the secret, so the
    case above fails if the check stops working (the per-member checks pass this chain)."""
    monkeypatch.setattr(confine, "check_tree", lambda root: None)
    hub, remote = Hub(tmp_path), Remote(tmp_path)
    remote.commit(CHART)
    esc = chain(remote, base="chart", target=hub.secrets["state"])
    rel = esc.removeprefix("chart/")
    remote.commit({"chart/templates/cm.yaml": leak_template(f'.Files.Get "{rel}"')})
    got = await hub.state.desired(at(chart_app(), remote), CLUSTER)
    assert got.error is None and got.rendered is not None
    assert f"{SECRET}-state" in got.rendered.objects[0]["data"]["text"]


@pytest.mark.anyio
async def test_chain_plain(tmp_path: Path) -> None:
    hub, remote = Hub(tmp_path), Remote(tmp_path)
    remote.commit({"app/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n"})
    esc = chain(remote, base="app", target=hub.secrets["clusters"], name="esc.yaml")
    app = AppSource(name="a", repo_url=remote.url, revision="main", path="app")
    await hub.refused(app, naming=repr(esc))


@pytest.mark.anyio
async def test_chain_kustomize(tmp_path: Path) -> None:
    hub, remote = Hub(tmp_path), Remote(tmp_path)
    esc = chain(remote, base="kust", target=hub.secrets["cache"], name="esc.yaml")
    remote.commit({"kust/kustomization.yaml": f"resources: [{esc.removeprefix('kust/')}]\n"})
    app = AppSource(name="k", repo_url=remote.url, revision="main", path="kust")
    await hub.refused(app, naming=repr(esc))


# -- absolute links into the hub's directories ------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("place", ["cache", "state", "clusters"])
async def test_absolute_links_into_hub_dirs(tmp_path: Path, place: str) -> None:
    """A file link (plain), a directory link (Helm ``.Files.Glob``) and a link inside a
    kustomize base, each to the absolute path of one of the hub's directories."""
    hub, remote = Hub(tmp_path), Remote(tmp_path)
    secret = hub.secrets[place]
    remote.commit(
        {
            **CHART,
            "chart/templates/cm.yaml": GLOB_TEMPLATE,
            "base/kustomization.yaml": "resources: [cm.yaml]\n",
            "overlay/kustomization.yaml": "resources: [../base]\n",
        }
    )
    remote.symlink("app/cm.yaml", str(secret))
    remote.symlink("chart/files/hub", str(secret.parent))
    remote.symlink("base/cm.yaml", str(secret))
    plain = AppSource(name="a", repo_url=remote.url, revision="main", path="app")
    await hub.refused(plain, naming="'app/cm.yaml'")
    await hub.refused(at(chart_app(), remote), naming="'chart/files/hub'")
    overlay = AppSource(name="k", repo_url=remote.url, revision="main", path="overlay")
    await hub.refused(overlay, naming="'base/cm.yaml'")


# -- Helm: files, value files, subcharts, dependencies ----------------------------------------


@pytest.mark.anyio
async def test_helm_files_get_through_a_directory_link_out_of_the_chart(tmp_path: Path) -> None:
    """``files/conf`` points into the repository outside the chart (a path the render does not
    read, so it is not laid out); ``.Files.Get "files/conf/…"`` cannot reach it."""
    hub, remote = Hub(tmp_path), Remote(tmp_path)
    remote.commit(
        {
            **CHART,
            "private/token.txt": SECRET,
            "chart/templates/cm.yaml": leak_template('.Files.Get "files/conf/token.txt"'),
        }
    )
    remote.symlink("chart/files/conf", "../../private")
    error = await hub.refused(at(chart_app(), remote), naming="'chart/files/conf'")
    assert "does not resolve" in str(error)


@pytest.mark.anyio
async def test_helm_value_file_through_a_link(tmp_path: Path) -> None:
    hub, remote = Hub(tmp_path), Remote(tmp_path)
    values = hub.root / "state" / "values.yaml"
    values.write_text(f"leak: {SECRET}\n")
    remote.commit({**CHART, "chart/templates/cm.yaml": leak_template(".Values.leak")})
    remote.symlink("values/prod.yaml", str(values))
    app = at(chart_app(value_files=("../values/prod.yaml",)), remote)
    await hub.refused(app, naming="'values/prod.yaml'")
    through_chain = chain(remote, base="values", target=values, name="prod.yaml")
    app = at(chart_app(value_files=(f"../{through_chain}",)), remote)
    await hub.refused(app, naming=repr(through_chain))


@pytest.mark.anyio
async def test_helm_subchart_that_is_a_link_out(tmp_path: Path) -> None:
    hub, remote = Hub(tmp_path), Remote(tmp_path)
    outside = hub.root / "state" / "evil"
    (outside / "templates").mkdir(parents=True)
    (outside / "Chart.yaml").write_text("apiVersion: v2\nname: evil\nversion: 0.1.0\n")
    (outside / "templates" / "cm.yaml").write_text(leak_template(f'"{SECRET}"'))
    remote.commit({**CHART, "chart/templates/cm.yaml": leak_template('"ok"')})
    esc = chain(remote, base="chart", target=outside)
    remote.symlink("chart/charts/evil", "../" + esc.removeprefix("chart/"))
    await hub.refused(at(chart_app(), remote), naming="'chart/charts/evil'")
    (remote.work / "chart/charts/evil").unlink()
    remote.symlink("chart/charts/evil", str(outside))  # the absolute link, for good measure
    await hub.refused(at(chart_app(), remote), naming="'chart/charts/evil'")


@pytest.mark.anyio
async def test_helm_file_dependency_out_of_the_repository(tmp_path: Path) -> None:
    """The subchart is vendored, so Helm would render it; the declaration is what is refused."""
    hub, remote = Hub(tmp_path), Remote(tmp_path)
    remote.commit(
        {
            "chart/Chart.yaml": (
                "apiVersion: v2\nname: web\nversion: 0.1.0\ndependencies:\n"
                "  - {name: sub, version: 0.1.0, repository: 'file://../../outside'}\n"
            ),
            "chart/charts/sub/Chart.yaml": "apiVersion: v2\nname: sub\nversion: 0.1.0\n",
            "chart/templates/cm.yaml": leak_template('"ok"'),
        }
    )
    error = await hub.refused(at(chart_app(), remote), naming="'chart/Chart.yaml'")
    assert "'file://../../outside'" in str(error) and "escapes the repository" in str(error)


@pytest.fixture
def counting_server() -> Iterator[tuple[str, list[str]]]:
    """An HTTP server on 127.0.0.1 that records every request path (answers 404)."""
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            seen.append(self.path)
            self.send_error(404)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.anyio
async def test_helm_never_reaches_the_network(
    tmp_path: Path, counting_server: tuple[str, list[str]]
) -> None:
    """A dependency on a chart repository that is not vendored fails offline: the repository
    saw no request (no dependency build, no repo update, no index download)."""
    url, seen = counting_server
    hub, remote = Hub(tmp_path), Remote(tmp_path)
    remote.commit(
        {
            "chart/Chart.yaml": (
                "apiVersion: v2\nname: web\nversion: 0.1.0\ndependencies:\n"
                f"  - {{name: sub, version: 0.1.0, repository: '{url}/charts'}}\n"
            ),
            "chart/templates/cm.yaml": leak_template('"ok"'),
        }
    )
    error = await hub.refused(at(chart_app(), remote), naming="helm failed")
    assert "missing in charts/ directory" in str(error)
    assert seen == []


# -- kustomize: links in a base, load restrictions, no exec -----------------------------------


@pytest.mark.anyio
async def test_kustomize_base_with_a_chain_out(tmp_path: Path) -> None:
    """The overlay references its base by ``../base`` (inside the repository); a link inside
    that base climbs out through a chain."""
    hub, remote = Hub(tmp_path), Remote(tmp_path)
    remote.commit(
        {
            "k/overlays/prod/kustomization.yaml": "resources: [../../base]\nnamePrefix: p-\n",
        }
    )
    esc = chain(remote, base="k/base", target=hub.secrets["clusters"], name="cm.yaml")
    remote.commit({"k/base/kustomization.yaml": f"resources: [{esc.removeprefix('k/base/')}]\n"})
    app = AppSource(name="k", repo_url=remote.url, revision="main", path="k/overlays/prod")
    await hub.refused(app, naming=repr(esc))


@pytest.mark.anyio
async def test_kustomize_load_restrictor_is_on(tmp_path: Path) -> None:
    """A generator file outside the kustomization's directory (inside the repository, so the
    planner lets it through) is refused by kustomize itself: the build restricts loads."""
    hub, remote = Hub(tmp_path), Remote(tmp_path)
    remote.commit(
        {
            "shared/token.txt": SECRET,
            "k/app/kustomization.yaml": (
                "configMapGenerator: [{name: leak, files: [../../shared/token.txt]}]\n"
            ),
        }
    )
    app = AppSource(name="k", repo_url=remote.url, revision="main", path="k/app")
    error = await hub.refused(app, naming="kustomize failed")
    assert "not in or below" in str(error)


@pytest.mark.anyio
async def test_kustomize_runs_no_exec_function(tmp_path: Path) -> None:
    """A generator declaring an exec KRM function is refused, and the script never ran."""
    marker = tmp_path / "ran"
    hub, remote = Hub(tmp_path), Remote(tmp_path)
    remote.commit(
        {
            "k/kustomization.yaml": "generators: [gen.yaml]\n",
            "k/gen.yaml": (
                "apiVersion: example.com/v1\nkind: Gen\nmetadata:\n  name: g\n  annotations:\n"
                "    config.kubernetes.io/function: |\n      exec:\n        path: ./run.sh\n"
            ),
            "k/run.sh": f"#!/bin/sh\ntouch {marker}\ncat\n",
        }
    )
    (remote.work / "k" / "run.sh").chmod(0o755)
    remote.commit({}, message="executable")
    app = AppSource(name="k", repo_url=remote.url, revision="main", path="k")
    error = await hub.refused(app, naming="kustomize failed")
    assert "plugins disabled" in str(error)
    assert not marker.exists()


# -- links that stay inside still work --------------------------------------------------------


@pytest.mark.anyio
async def test_links_inside_the_tree_render(tmp_path: Path) -> None:
    hub, remote = Hub(tmp_path), Remote(tmp_path)
    remote.commit(
        {
            **CHART,
            "chart/files/real/text.txt": "inside",
            "chart/templates/cm.yaml": leak_template('.Files.Get "files/alias/text.txt"'),
            "values/prod.yaml": "replicas: 2\n",
        }
    )
    remote.symlink("chart/files/alias", "real")
    remote.symlink("chart/values-prod.yaml", "../values/prod.yaml")  # read as a value file too
    app = at(chart_app(value_files=("values-prod.yaml", "../values/prod.yaml")), remote)
    got = await hub.state.desired(app, CLUSTER)
    assert got.error is None and got.rendered is not None
    assert got.rendered.objects[0]["data"]["text"] == "inside"


# -- which kustomize renders skip the checkout ------------------------------------------------


@pytest.mark.anyio
async def test_only_plain_text_trees_render_from_memory(tmp_path: Path) -> None:
    """A kustomization of plain text files renders from its files in memory (no checkout);
    one whose tree holds a link, even one that stays inside, or a file that is not UTF-8 text
    renders from a checkout, where the links are resolved and checked; all three give what
    the committed files say."""
    hub, remote = Hub(tmp_path), Remote(tmp_path)
    cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: %s}\ndata: {k: v}\n"
    remote.commit(
        {
            "base/kustomization.yaml": "resources: [cm.yaml]\n",
            "base/cm.yaml": cm % "plain",
            "plain/kustomization.yaml": "resources: [../base]\nnamePrefix: p-\n",
            "linked/kustomization.yaml": "resources: [cm.yaml]\n",
            "linked/real.yaml": cm % "linked",
            "latin/kustomization.yaml": (
                "configMapGenerator: [{name: latin, files: [text.bin]}]\n"
                "generatorOptions: {disableNameSuffixHash: true}\n"
            ),
        }
    )
    remote.symlink("linked/cm.yaml", "real.yaml")
    (remote.work / "latin" / "text.bin").write_bytes(b"caf\xe9\n")  # Latin-1, not UTF-8
    remote.commit({}, message="a file that is not UTF-8")
    renderer = hub.state.renderer

    async def names(path: str) -> list[str]:
        got = await hub.state.desired(
            AppSource(name=path, repo_url=remote.url, revision="main", path=path), CLUSTER
        )
        assert got.error is None and got.rendered is not None, got.error
        return [o["metadata"]["name"] for o in got.rendered.objects]

    assert await names("plain") == ["p-plain"]
    assert (renderer.renders, renderer.from_files) == (1, 1)
    assert await names("linked") == ["linked"]
    assert (renderer.renders, renderer.from_files) == (2, 1)
    assert await names("latin") == ["latin"]
    assert (renderer.renders, renderer.from_files) == (3, 1)
