"""What a rendering tool sees: the environment, the command line, and the tree check on its own.

The environment is checked where a tool receives it: ``env`` and ``helm env`` run through
:func:`fleet.render.tools.run_tool` with :func:`~fleet.render.tools.tool_env`, while the hub's own
environment holds every kind of credential an operator could have set.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

from fleet.controlplane.binaries import ensure_tool
from fleet.errors import StalledError
from fleet.render import (
    HelmOptions,
    Renderer,
    RenderPlan,
    RenderSettings,
    RenderSpec,
    confine,
    helm,
    kustomize,
    tools,
)
from fleet.settings import default_cache_dir

HUB_SECRETS = {
    "FLEET_GITHUB_SECRET": "gh-webhook-secret-1",
    "FLEET_GITLAB_TOKEN": "gl-token-2",
    "KUBECONFIG": "/hub/clusters/prod.yaml",
    "SSH_AUTH_SOCK": "/tmp/ssh-agent.sock",
    "GIT_ASKPASS": "/hub/askpass",
    "GIT_CONFIG_GLOBAL": "/hub/gitconfig",
    "GIT_SSH_COMMAND": "ssh -i /hub/id_ed25519",
    "AWS_SECRET_ACCESS_KEY": "aws-secret-3",
    "HELM_REPOSITORY_CONFIG": "/hub/helm/repositories.yaml",
    "HELM_REGISTRY_CONFIG": "/hub/helm/registry.json",
    "KUBERNETES_SERVICE_HOST": "10.0.0.1",
}
ALLOWED = {"PATH", "LANG", "LC_ALL", "HOME", "TMPDIR", "HELM_NO_PLUGINS"}


@pytest.fixture
def hub_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in HUB_SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("PATH", os.pathsep.join(["", ".", "bin", os.environ["PATH"]]))


def test_tool_env_holds_nothing_of_the_hub(tmp_path: Path, hub_env: None) -> None:
    env = tools.tool_env(tmp_path)
    for name, value in env.items():
        assert value not in HUB_SECRETS.values(), name
        if name not in ALLOWED:  # every other variable is a directory in the scratch
            assert Path(value).is_relative_to(tmp_path), (name, value)
        assert name.startswith(("XDG_", "HELM_", "KUSTOMIZE_")) or name in ALLOWED, name
    assert env["HOME"] == env["TMPDIR"] == str(tmp_path)
    assert all(os.path.isabs(entry) for entry in env["PATH"].split(os.pathsep))
    assert "KUBECONFIG" not in env and "SSH_AUTH_SOCK" not in env


@pytest.mark.anyio
async def test_a_tool_sees_exactly_tool_env(tmp_path: Path, hub_env: None) -> None:
    env = tools.tool_env(tmp_path)
    out = await tools.run_tool(["/usr/bin/env"], cwd=tmp_path, env=env, max_output=1 << 20)
    seen = dict(line.split("=", 1) for line in out.decode().splitlines())
    assert seen == env
    text = out.decode()
    assert not [secret for secret in HUB_SECRETS.values() if secret in text]


@pytest.mark.anyio
async def test_helm_settings_live_in_the_scratch(tmp_path: Path, hub_env: None) -> None:
    """Helm's own view (``helm env``): repositories, registry login, plugins, caches in scratch."""
    binary = ensure_tool("helm", cache_dir=default_cache_dir())
    env = tools.tool_env(tmp_path)
    out = await tools.run_tool([str(binary), "env"], cwd=tmp_path, env=env, max_output=1 << 20)
    settings = {
        name: value.strip('"')
        for name, value in (line.split("=", 1) for line in out.decode().splitlines())
    }
    for name in (
        "HELM_CACHE_HOME",
        "HELM_CONFIG_HOME",
        "HELM_DATA_HOME",
        "HELM_PLUGINS",
        "HELM_REGISTRY_CONFIG",
        "HELM_REPOSITORY_CACHE",
        "HELM_REPOSITORY_CONFIG",
    ):
        assert Path(settings[name]).is_relative_to(tmp_path), (name, settings[name])
    assert settings["HELM_KUBECONTEXT"] == "" and settings.get("HELM_KUBETOKEN", "") == ""


def test_helm_command_line_is_offline(tmp_path: Path) -> None:
    options = HelmOptions(release="web", value_files=("v.yaml", "https://example.com/v.yaml"))
    command = helm.template_command(
        Path("/bin/helm"),
        checkout=tmp_path,
        chart="chart",
        namespace="ns",
        options=options,
        inline_values=None,
    )
    assert command[:4] == ["/bin/helm", "template", "web", str(tmp_path / "chart")]
    for flag in ("--dependency-update", "--repo", "--verify", "--validate", "--post-renderer"):
        assert not any(arg.startswith(flag) for arg in command), flag
    values = [command[i + 1] for i, arg in enumerate(command) if arg == "--values"]
    assert values == [
        str(tmp_path / "chart/v.yaml"),
        str(tmp_path / "chart/https:/example.com/v.yaml"),
    ]


def test_kustomize_command_restricts_loads_and_enables_nothing(tmp_path: Path) -> None:
    for binary in (Path("/usr/bin/kubectl"), Path("/usr/local/bin/kustomize")):
        command = kustomize.build_command(tmp_path, binary=binary)
        assert command[-1] == "--load-restrictor=LoadRestrictionsRootOnly"
        assert not [arg for arg in command if arg.startswith("--enable")]


# -- the tree check on hand-made trees ---------------------------------------------------------


def tree(root: Path, links: dict[str, str]) -> Path:
    (root / "repo" / "dir").mkdir(parents=True)
    (root / "repo" / "dir" / "file.yaml").write_text("a: 1\n")
    for rel, target in links.items():
        (root / "repo" / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / "repo" / rel).symlink_to(target)
    return root / "repo"


@pytest.mark.parametrize(
    ("links", "message"),
    [
        ({"a/abs": "/etc/passwd"}, r"'a/abs' is a symlink to '/etc/passwd', which escapes"),
        ({"parent": ".."}, r"'parent' is a symlink to '..', which escapes"),
        ({"a/up": "../dir", "a/esc": "up/../../x"}, r"'a/esc' is a symlink to 'up/../../x'"),
        ({"gone": "dir/none.yaml"}, r"'gone' is a symlink to 'dir/none.yaml', which does not"),
        ({"a/one": "two", "a/two": "one"}, r"'a/one' is a symlink to 'two', which does not"),
        (
            {"dir/loop": ".."},
            r"'dir/loop' is a symlink to '..', a directory that contains the link",
        ),
    ],
)
def test_check_tree_refuses(tmp_path: Path, links: dict[str, str], message: str) -> None:
    with pytest.raises(StalledError, match=message):
        confine.check_tree(tree(tmp_path, links))


def test_check_tree_accepts_links_inside(tmp_path: Path) -> None:
    root = tree(tmp_path, {"a/alias": "../dir", "a/f.yaml": "alias/file.yaml", "b": "a/alias"})
    confine.check_tree(root)


def test_check_tree_refuses_a_fifo(tmp_path: Path) -> None:
    root = tree(tmp_path, {})
    os.mkfifo(root / "dir" / "pipe")
    with pytest.raises(StalledError, match=r"'dir/pipe' is neither a file"):
        confine.check_tree(root)


def test_check_tree_never_shows_the_resolved_path(tmp_path: Path) -> None:
    secret_dir = tmp_path / "hub-state"
    secret_dir.mkdir()
    root = tree(tmp_path, {"a/up": "../dir", "a/esc": "up/../../hub-state"})
    with pytest.raises(StalledError) as caught:
        confine.check_tree(root)
    assert str(tmp_path) not in str(caught.value)


def test_check_tree_quotes_and_bounds_the_link_text(tmp_path: Path) -> None:
    root = tree(tmp_path, {"nl": "/x\n" + "y" * 300})
    with pytest.raises(StalledError) as caught:
        confine.check_tree(root)
    message = str(caught.value)
    assert "\n" not in message and "'/x\\n" + "y" * 197 + "...'" in message


PROBE = """#!/bin/sh
printf 'apiVersion: v1\\nkind: ConfigMap\\nmetadata: {name: probe}\\ndata:\\n'
printf '  cwd: "%s"\\n  args: "%s"\\n' "$(pwd -P)" "$*"
printf '  env: "%s"\\n' "$(env | base64 -w0)"
"""


@pytest.mark.anyio
async def test_the_renderer_hands_a_tool_only_tool_env(tmp_path: Path, hub_env: None) -> None:
    """A probe in the place of kustomize (run by the real engine, as kustomize would be) reports
    its cwd, argv and environment: the checkout, the restricted build, nothing of the hub, and a
    HOME of its own per render, gone afterwards."""
    probe = tmp_path / "bin" / "kustomize"
    probe.parent.mkdir()
    probe.write_text(PROBE)
    probe.chmod(0o755)
    checkout = tmp_path / "render" / "repo"
    (checkout / "app").mkdir(parents=True)
    (checkout / "app" / "kustomization.yaml").write_text("resources: []\n")
    renderer = Renderer(RenderSettings(kustomize=probe))
    plan = RenderPlan("kustomize", "app", ("app",), RenderSpec("app"))
    homes = []
    for _ in range(2):
        (report,) = await renderer.render(checkout, plan)
        data = report["data"]
        env = dict(
            line.split("=", 1) for line in base64.b64decode(data["env"]).decode().splitlines()
        )
        assert data["cwd"] == str(checkout.resolve())
        assert (
            data["args"] == f"build {checkout / 'app'} --load-restrictor=LoadRestrictionsRootOnly"
        )
        assert env.keys() == tools.tool_env(Path(env["HOME"])).keys() | {"PWD"}
        assert not [secret for secret in HUB_SECRETS.values() if secret in env.values()]
        homes.append(Path(env["HOME"]))
    assert homes[0] != homes[1] and not homes[0].exists() and not homes[1].exists()
    assert not homes[0].is_relative_to(checkout.parent)  # not beside the checkout
