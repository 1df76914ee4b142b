"""What each sink is sent (pure): commit states of a record, repository paths, secrets."""

from __future__ import annotations

import pytest

from fleet.errors import ConfigError
from fleet.notify import SinkSpec
from fleet.notify.messages import commit_state, github_repo, gitlab_project, resolve
from fleet.report import TargetStatus

A, B = "a" * 40, "b" * 40


def _green() -> TargetStatus:
    return TargetStatus(
        cluster="prod-1",
        app="web",
        sync="Synced",
        health="Healthy",
        desired_commit=A,
        desired_digest="d1",
        applied_commit=A,
        applied_digest="d1",
    )


def test_commit_state_follows_the_record() -> None:
    green = _green()
    assert commit_state(green) == ("success", A, "Synced and Healthy on prod-1")
    failed = TargetStatus(
        cluster="prod-1",
        app="web",
        sync="OutOfSync",
        health="Healthy",
        desired_commit=B,
        applied_commit=A,
        error="app/x.yaml: bad",
        error_reason="RenderFailed",
    )
    assert commit_state(failed) == ("failure", B, "RenderFailed: app/x.yaml: bad")
    gone = TargetStatus(
        cluster="prod-1", app="web", desired_commit=B, error="no answer", error_reason="Unreachable"
    )
    assert commit_state(gone) == ("error", B, "Unreachable: no answer")
    rolling = TargetStatus(
        cluster="prod-1", app="web", sync="Synced", health="Progressing", desired_commit=B,
        applied_commit=B,
    )  # fmt: skip
    assert commit_state(rolling) == ("pending", B, "sync Synced, health Progressing on prod-1")
    degraded = TargetStatus(
        cluster="prod-1", app="web", sync="Synced", health="Degraded", desired_commit=B,
        applied_commit=B,
    )  # fmt: skip
    assert commit_state(degraded) == ("failure", B, "health is Degraded on prod-1")
    assert commit_state(TargetStatus(cluster="prod-1", app="web")) is None  # no commit yet
    suspended = TargetStatus(cluster="prod-1", app="web", desired_commit=A, suspended=True)
    assert commit_state(suspended) is None


@pytest.mark.parametrize(
    ("url", "repo"),
    [
        ("https://github.com/acme/web.git", "acme/web"),
        ("https://github.com/acme/web", "acme/web"),
        ("git@github.com:acme/web.git", "acme/web"),
        ("ssh://git@github.com/acme/web.git", "acme/web"),
        ("ssh://git@ghe.corp:2222/acme/web", "acme/web"),
    ],
)
def test_github_owner_and_repo_from_https_and_ssh(url: str, repo: str) -> None:
    assert github_repo(url) == repo


def test_gitlab_project_path_is_url_encoded() -> None:
    assert gitlab_project("https://gitlab.com/group/sub/web.git") == "group%2Fsub%2Fweb"
    assert gitlab_project("git@gitlab.example:group/web.git") == "group%2Fweb"


@pytest.mark.parametrize("url", ["/srv/git/web", "https://github.com/acme", "https://github.com/"])
def test_a_url_without_a_repository_path_is_named(url: str) -> None:
    with pytest.raises(ValueError, match="repoURL"):
        github_repo(url)


def test_resolve_names_the_missing_variable() -> None:
    spec = SinkSpec(name="hook", type="webhook", url="https://x.example/h", secret_env="HOOK_KEY")
    with pytest.raises(
        ConfigError, match="sink hook: secretEnv: the environment variable HOOK_KEY"
    ):
        resolve(spec, {})
    assert resolve(spec, {"HOOK_KEY": "k3y"}).secret == b"k3y"
    slack = SinkSpec(name="chat", type="slack", url_env="SLACK")
    with pytest.raises(ConfigError, match="SLACK does not hold an http"):
        resolve(slack, {"SLACK": "not a url"})
