"""Webhook verification and parsing (pure): GitHub HMAC-SHA256, GitLab token."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from fleet.hub import webhooks

SECRET = "s3cret"
GITHUB_PUSH = json.dumps(
    {
        "ref": "refs/heads/main",
        "after": "0123456789abcdef0123456789abcdef01234567",
        "repository": {
            "clone_url": "https://github.com/team/config.git",
            "ssh_url": "git@github.com:team/config.git",
            "html_url": "https://github.com/team/config",
        },
    }
).encode()
GITLAB_PUSH = json.dumps(
    {
        "ref": "refs/heads/main",
        "checkout_sha": "feedface" * 5,
        "project": {
            "git_http_url": "https://gitlab.example.com/team/config.git",
            "git_ssh_url": "git@gitlab.example.com:team/config.git",
        },
    }
).encode()


def _sign(body: bytes, secret: str = SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def test_github_push() -> None:
    headers = {"X-GitHub-Event": "push", "X-Hub-Signature-256": _sign(GITHUB_PUSH)}
    push = webhooks.parse_github(headers, GITHUB_PUSH, secret=SECRET)
    assert push is not None
    assert push.ref == "refs/heads/main"
    assert push.urls == (
        "https://github.com/team/config.git",
        "git@github.com:team/config.git",
        "https://github.com/team/config",
    )


@pytest.mark.parametrize(
    "signature", ["", "sha256=00", _sign(GITHUB_PUSH, "other"), _sign(GITHUB_PUSH + b" ")]
)
def test_github_bad_signature_is_401(signature: str) -> None:
    headers = {"X-GitHub-Event": "push", "X-Hub-Signature-256": signature}
    with pytest.raises(webhooks.WebhookError) as caught:
        webhooks.parse_github(headers, GITHUB_PUSH, secret=SECRET)
    assert caught.value.status == 401


def test_github_without_secret_refuses() -> None:
    with pytest.raises(webhooks.WebhookError, match="no GitHub webhook secret"):
        webhooks.parse_github({"X-GitHub-Event": "push"}, GITHUB_PUSH, secret="")


def test_github_ping_moves_nothing() -> None:
    body = b'{"zen": "hi"}'
    headers = {"X-GitHub-Event": "ping", "X-Hub-Signature-256": _sign(body)}
    assert webhooks.parse_github(headers, body, secret=SECRET) is None


def test_gitlab_push_and_bad_token() -> None:
    headers = {"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": SECRET}
    push = webhooks.parse_gitlab(headers, GITLAB_PUSH, secret=SECRET)
    assert push is not None and push.after == "feedface" * 5
    assert push.urls[0] == "https://gitlab.example.com/team/config.git"
    with pytest.raises(webhooks.WebhookError) as caught:
        webhooks.parse_gitlab({**headers, "X-Gitlab-Token": "nope"}, GITLAB_PUSH, secret=SECRET)
    assert caught.value.status == 401


def test_signed_garbage_is_400() -> None:
    body = b"not json"
    headers = {"X-GitHub-Event": "push", "X-Hub-Signature-256": _sign(body)}
    with pytest.raises(webhooks.WebhookError) as caught:
        webhooks.parse_github(headers, body, secret=SECRET)
    assert caught.value.status == 400
