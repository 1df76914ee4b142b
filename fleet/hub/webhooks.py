"""Push webhooks from GitHub and GitLab: verify, then name the repository and ref that moved.

Verification is split in two steps so the server can refuse before it has read the body:

1. :func:`github_check` / :func:`gitlab_check` look at the headers alone. GitLab's shared token
   (``X-Gitlab-Token``) is compared here, in constant time, so a wrong token is refused (401)
   before any byte of the body is read. GitHub signs the body (``X-Hub-Signature-256:
   sha256=<hex>``): a missing or malformed signature, or no configured secret, is refused here.
2. The returned :class:`BodyCheck` is fed the body chunk by chunk as it streams (``update``), so
   GitHub's HMAC-SHA256 is computed while the body arrives and no second pass is needed; ``finish``
   compares the digest in constant time and only then parses the JSON.

A request that fails either step triggers nothing. A verified push yields a :class:`Push` with
every URL the payload gives for the repository (https, ssh, web), so the hub can match it against
the normalised URLs of its sources whichever form an app uses, and the branch with its old and new
commits (:attr:`Push.pushed`), which spare the hub a listing of the remote when they continue what
its mirror knows (:mod:`fleet.sources.pushed`; a replayed push does not). Only a push that passed
its check (``finish``) is marked authenticated; one built any other way never stands in for a
listing. Everything here is pure: headers
and bytes in, a Push or a :class:`WebhookError` (carrying the HTTP status) out.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from fleet.sources.pushed import PushedRef

__all__ = [
    "BodyCheck",
    "Push",
    "WebhookError",
    "github_check",
    "gitlab_check",
    "parse_github",
    "parse_gitlab",
]

_SIGNATURE = re.compile(r"sha256=[0-9a-f]{64}")


class WebhookError(Exception):
    """The request is refused: `status` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Push:
    """A push: the repository's URLs, the ref, its old and new commits (if given), and whether
    the request proved its sender (set by :meth:`BodyCheck.finish` only)."""

    provider: str
    urls: tuple[str, ...]
    ref: str
    after: str
    before: str = ""
    authenticated: bool = False

    @property
    def pushed(self) -> PushedRef | None:
        """The claim that a branch moved from `before` to `after`, which the hub may use instead
        of listing the remote (:meth:`fleet.sources.Sources.refresh`). None for an
        unauthenticated push, a tag (its sha may be the tag object), a branch made or deleted,
        or a payload without both commits."""
        return PushedRef.of(
            ref=self.ref, before=self.before, after=self.after, authenticated=self.authenticated
        )


def _header(headers: Mapping[str, str], name: str) -> str:
    lowered = {k.lower(): v for k, v in headers.items()}
    return lowered.get(name.lower(), "")


class BodyCheck:
    """The body half of a webhook's verification, fed as the body streams.

    Built by :func:`github_check` or :func:`gitlab_check` once the headers passed; `update` takes
    each chunk, `finish` takes the whole body (the server keeps it, bounded by its size cap, for
    the JSON) and returns the push, or None for an event that moves nothing.
    """

    def __init__(self, *, provider: str, event: str, signature: str = "", secret: str = "") -> None:
        self.provider = provider
        self.event = event
        self._signature = signature
        self._mac = hmac.new(secret.encode(), digestmod=hashlib.sha256) if signature else None

    @property
    def authenticated(self) -> bool:
        """True when the headers alone proved the sender (GitLab's token): the body is trusted."""
        return self._mac is None

    def update(self, chunk: bytes) -> None:
        if self._mac is not None:
            self._mac.update(chunk)

    def finish(self, body: bytes) -> Push | None:
        if self._mac is not None:
            expected = "sha256=" + self._mac.hexdigest()
            if not hmac.compare_digest(self._signature.encode(), expected.encode()):
                raise WebhookError(
                    401,
                    "X-Hub-Signature-256 does not match the body: check that the webhook's "
                    "secret equals FLEET_GITHUB_SECRET",
                )
        if self.provider == "github":
            push = _github_push(body) if self.event == "push" else None
        elif self.event in ("Push Hook", "Tag Push Hook"):
            push = _gitlab_push(body)
        else:
            push = None
        return None if push is None else replace(push, authenticated=True)


def github_check(headers: Mapping[str, str], *, secret: str) -> BodyCheck:
    """GitHub's headers: a secret is configured and the signature is well formed."""
    if not secret:
        raise WebhookError(
            401, "no GitHub webhook secret is configured (FLEET_GITHUB_SECRET): refusing pushes"
        )
    signature = _header(headers, "X-Hub-Signature-256").strip().lower()
    if not signature:
        raise WebhookError(401, "X-Hub-Signature-256 is missing: set a secret on the webhook")
    if not _SIGNATURE.fullmatch(signature):
        raise WebhookError(401, "X-Hub-Signature-256 is not of the form sha256=<64 hex digits>")
    return BodyCheck(
        provider="github",
        event=_header(headers, "X-GitHub-Event"),
        signature=signature,
        secret=secret,
    )


def gitlab_check(headers: Mapping[str, str], *, secret: str) -> BodyCheck:
    """GitLab's headers: the shared token matches (constant time), before any body is read."""
    if not secret:
        raise WebhookError(
            401, "no GitLab webhook token is configured (FLEET_GITLAB_TOKEN): refusing pushes"
        )
    token = _header(headers, "X-Gitlab-Token")
    if not token or not hmac.compare_digest(token.encode(), secret.encode()):
        raise WebhookError(401, "X-Gitlab-Token does not match the configured token")
    return BodyCheck(provider="gitlab", event=_header(headers, "X-Gitlab-Event"))


def parse_github(headers: Mapping[str, str], body: bytes, *, secret: str) -> Push | None:
    """A push from GitHub, or None for an event that moves nothing (ping, issues, ...)."""
    check = github_check(headers, secret=secret)
    check.update(body)
    return check.finish(body)


def parse_gitlab(headers: Mapping[str, str], body: bytes, *, secret: str) -> Push | None:
    """A push (or tag push) from GitLab, or None for other events."""
    check = gitlab_check(headers, secret=secret)
    check.update(body)
    return check.finish(body)


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


def _github_push(body: bytes) -> Push:
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
        before=str(data.get("before") or ""),
    )


def _gitlab_push(body: bytes) -> Push:
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
        before=str(data.get("before") or ""),
    )
