"""Repository identity and credentials: normalised keys, no secret in argv, repr or URL."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleet import logs
from fleet.errors import ConfigError
from fleet.sources import check_repo_url, load_credentials, repo_id
from fleet.sources.credentials import git_auth_env


def test_spellings_of_one_repo_share_a_key(tmp_path: Path) -> None:
    a = repo_id("https://Git.Example.com:443/team/app.git/")
    b = repo_id("https://git.example.com/team/app")
    assert a.key == b.key == "https://git.example.com/team/app"
    assert a.fetch_url.endswith("app.git/")
    assert repo_id("git@github.com:org/x.git").key == "ssh://git@github.com/org/x"
    assert repo_id(str(tmp_path)).key == repo_id(tmp_path.as_uri() + "/").key
    assert a.mirror_name() != repo_id("https://git.example.com/team/other").mirror_name()


@pytest.mark.parametrize(
    ("url", "secret", "host"),
    [
        ("https://bot:hunter2@git.example.com/x.git", "hunter2", "git.example.com"),
        (
            "https://ghp_abcdefghijklmnop0123@github.com/org/r",
            "ghp_abcdefghijklmnop0123",
            "github.com",
        ),
        ("https://oauth2:glpat-s3cr3tvalue@gitlab.com/g/r.git", "glpat-s3cr3tvalue", "gitlab.com"),
        ("http://user:pct%40word@127.0.0.1:8080/r", "pct%40word", "127.0.0.1"),
        ("ssh://git:sshpass@git.example.com/r", "sshpass", "git.example.com"),
        ("deploy:scppass@git.example.com:org/r.git", "scppass", "git.example.com"),
    ],
)
def test_credentials_in_url_are_refused_naming_app_and_host(
    url: str, secret: str, host: str
) -> None:
    with pytest.raises(ConfigError) as info:
        check_repo_url(url, app="web")
    message = str(info.value)
    assert message.startswith(f"app web: repoURL for host {host} holds ")
    assert "--credentials FILE" in message and "credentials: [{url:" in message
    assert logs.scrub(message) == message  # the hint survives the log's scrubbing whole
    assert secret not in message and "pct@word" not in message
    assert "\n" not in message
    with pytest.raises(ConfigError):  # the hub's own calls refuse it too
        repo_id(url)


def test_ssh_user_names_and_plain_urls_stay_allowed(tmp_path: Path) -> None:
    for url in (
        "git@github.com:org/x.git",
        "ssh://git@github.com/org/x",
        "https://github.com/org/x",
        "http://127.0.0.1:8080/x.git",
        str(tmp_path),
    ):
        check_repo_url(url, app="web")


def test_malformed_urls_are_config_errors_without_secrets() -> None:
    for url, words in (
        ("https://h:80x/r", "not a valid URL"),
        ("ftp://u:ftppass@h/x", "holds a password"),
        ("gopher://h/x", "unsupported scheme 'gopher'"),
        ("", "empty"),
    ):
        with pytest.raises(ConfigError, match=words) as info:
            check_repo_url(url, app="a")
        assert "ftppass" not in str(info.value)


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


def test_credentials_file_secrets_are_masked_and_bad_urls_named(tmp_path: Path) -> None:
    key = tmp_path / "deploy_key"
    body = "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAAB"
    key.write_text(
        f"-----BEGIN OPENSSH PRIVATE KEY-----\n{body}\n-----END OPENSSH PRIVATE KEY-----\n"
    )
    file = tmp_path / "creds.yaml"
    file.write_text(
        "credentials:\n"
        "  - {url: 'https://git.example.com/', username: a, password: pw-masked-1}\n"
        f"  - {{url: 'ssh://git@example.com/', sshKey: {key}}}\n"
    )
    load_credentials(file)
    assert logs.scrub(f"x pw-masked-1 y {body}") == "x *** y ***"
    file.write_text("credentials:\n  - {url: 'https://bot:pw-in-url@git.example.com/'}\n")
    with pytest.raises(ConfigError, match=r"creds.yaml: entry 0: 'url' must be a plain") as info:
        load_credentials(file)
    assert "pw-in-url" not in str(info.value)
