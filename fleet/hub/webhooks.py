"""Push webhooks from GitHub and GitLab: verify, then name the repository and ref that moved.

Verification comes first and is constant-time: GitHub signs the raw body with HMAC-SHA256
(``X-Hub-Signature-256: sha256=<hex>``); GitLab sends a shared token (``X-Gitlab-Token``). A request
that fails it is refused (401) before its body is parsed, and triggers nothing. A verified push
yields a :class:`Push` with every URL the payload gives for the repository (https, ssh, web), so
the hub can match it against the normalised URLs of its sources whichever form an app uses.
Everything here is pure: bytes and headers in, a Push or an error out.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Push", "WebhookError", "parse_github", "parse_gitlab"]


class WebhookError(Exception):
    """The request is refused: `status` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Push:
    """A verified push: the repository's URLs, the ref, and the new commit (if given)."""

    provider: str
    urls: tuple[str, ...]
    ref: str
    after: str


def _header(headers: Mapping[str, str], name: str) -> str:
    lowered = {k.lower(): v for k, v in headers.items()}
    return lowered.get(name.lower(), "")


def _json(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WebhookError(400, f"body is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise WebhookError(400, "body is not a JSON object")
    return data


def _urls(*candidates: Any) -> tuple[str, ...]:
    return tuple(dict.fromkeys(c for c in candidates if isinstance(c, str) and c))


def parse_github(headers: Mapping[str, str], body: bytes, *, secret: str) -> Push | None:
    """A push from GitHub, or None for an event that moves nothing (ping, issues, ...)."""
    signature = _header(headers, "X-Hub-Signature-256")
    if not secret:
        raise WebhookError(401, "no GitHub webhook secret is configured: refusing unsigned pushes")
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    if not signature or not hmac.compare_digest(signature.encode(), expected.encode()):
        raise WebhookError(401, "X-Hub-Signature-256 does not match the body")
    event = _header(headers, "X-GitHub-Event")
    if event != "push":
        return None
    data = _json(body)
    repo = data.get("repository") or {}
    if not isinstance(repo, dict):
        raise WebhookError(400, "push without repository")
    return Push(
        provider="github",
        urls=_urls(
            repo.get("clone_url"),
            repo.get("ssh_url"),
            repo.get("git_url"),
            repo.get("html_url"),
            repo.get("url"),
        ),
        ref=str(data.get("ref", "")),
        after=str(data.get("after", "")),
    )


def parse_gitlab(headers: Mapping[str, str], body: bytes, *, secret: str) -> Push | None:
    """A push (or tag push) from GitLab, or None for other events."""
    token = _header(headers, "X-Gitlab-Token")
    if not secret:
        raise WebhookError(401, "no GitLab webhook token is configured: refusing pushes")
    if not token or not hmac.compare_digest(token.encode(), secret.encode()):
        raise WebhookError(401, "X-Gitlab-Token does not match")
    event = _header(headers, "X-Gitlab-Event")
    if event not in ("Push Hook", "Tag Push Hook"):
        return None
    data = _json(body)
    project = data.get("project") or data.get("repository") or {}
    if not isinstance(project, dict):
        raise WebhookError(400, "push without project")
    return Push(
        provider="gitlab",
        urls=_urls(
            project.get("git_http_url"),
            project.get("git_ssh_url"),
            project.get("web_url"),
            project.get("http_url"),
            project.get("url"),
        ),
        ref=str(data.get("ref", "")),
        after=str(data.get("checkout_sha") or data.get("after") or ""),
    )
