"""Repository identity and credentials: normalised keys, no secret in argv, repr or URL."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleet.errors import ConfigError
from fleet.sources import load_credentials, repo_id
from fleet.sources.credentials import git_auth_env


def test_spellings_of_one_repo_share_a_key(tmp_path: Path) -> None:
    a = repo_id("https://Git.Example.com:443/team/app.git/")
    b = repo_id("https://git.example.com/team/app")
    assert a.key == b.key == "https://git.example.com/team/app"
    assert a.fetch_url.endswith("app.git/")
    assert repo_id("git@github.com:org/x.git").key == "ssh://git@github.com/org/x"
    assert repo_id(str(tmp_path)).key == repo_id(tmp_path.as_uri() + "/").key
    assert a.mirror_name() != repo_id("https://git.example.com/team/other").mirror_name()


def test_password_in_url_is_refused() -> None:
    with pytest.raises(ConfigError, match="password in the URL") as info:
        repo_id("https://bot:hunter2@git.example.com/x.git")
    assert "hunter2" not in str(info.value)


def test_credentials_file_longest_prefix_and_no_secret_in_repr(tmp_path: Path) -> None:
    file = tmp_path / "creds.yaml"
    file.write_text(
        "credentials:\n"
        "  - {url: 'https://git.example.com/', username: a, password: p-one}\n"
        "  - {url: 'https://git.example.com/team/', token: t-two}\n"
        "  - {url: 'ssh://git@github.com/', sshKey: /k, knownHosts: /kh}\n"
    )
    creds = load_credentials(file)
    team = creds.for_key("https://git.example.com/team/app")
    assert team is not None and team.username == "x-access-token"
    assert "t-two" not in repr(team)
    env = git_auth_env(team, scheme="https", askpass=tmp_path / "askpass.sh")
    assert env["FLEET_GIT_PASSWORD"] == "t-two"
    assert "t-two" not in env["GIT_ASKPASS"] + env["GIT_SSH_COMMAND"]
    ssh = git_auth_env(
        creds.for_key("ssh://git@github.com/org/x"), scheme="ssh", askpass=tmp_path / "a"
    )
    assert "StrictHostKeyChecking=yes" in ssh["GIT_SSH_COMMAND"]
    assert "-i /k" in ssh["GIT_SSH_COMMAND"]
    assert "UserKnownHostsFile=/kh" in ssh["GIT_SSH_COMMAND"]
    assert "FLEET_GIT_PASSWORD" not in ssh
