"""What each sink is sent, as plain data (pure: no I/O, no clock).

A :class:`Notice` is one thing to tell one sink, frozen when it happened: an event of a target
for the webhook and Slack sinks, or a commit state for the status sinks. :func:`request_for`
turns it into the exact HTTP :class:`Request` of that sink's protocol:

- webhook: a JSON body, ``X-Fleet-Signature: sha256=<HMAC-SHA256 of the body>``, an
  ``X-Fleet-Delivery`` id that stays the same across retries (the receiver can dedup on it);
- slack: ``{"text": ...}``, one readable line;
- github-status: ``POST {api}/repos/{owner}/{repo}/statuses/{sha}`` with a bearer token;
- gitlab-status: ``POST {api}/api/v4/projects/{url-encoded path}/statuses/{sha}`` with
  ``PRIVATE-TOKEN``; GitLab's 400 for a state the commit already has counts as delivered.

:func:`commit_state` reads a target's record as a commit status (context ``fleet/<app>/<cluster>``):
``success`` when green, ``failure`` on a failed sync or render or a Degraded rollout, ``error``
when the cluster does not answer, ``pending`` while it syncs or progresses, or when its sync
gave way to a newer commit (superseded: never a failure; the newer commit's state follows).
:func:`resolve` reads a sink's secrets from the environment once, and names the variable when
one is missing.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import quote, urlsplit

from fleet.errors import ConfigError
from fleet.notify.settings import SinkSpec
from fleet.report.targets import TargetStatus

__all__ = [
    "Endpoint",
    "Notice",
    "Request",
    "commit_state",
    "context_of",
    "github_repo",
    "gitlab_project",
    "link_of",
    "request_for",
    "resolve",
    "shown_endpoint",
    "sign",
    "slack_text",
]

_DESCRIPTION = 140  # GitHub's limit on a status description
_GITLAB_STATES = {
    "success": "success",
    "failure": "failed",
    "error": "failed",
    "pending": "pending",
}
_AGENT = "fleet-notify"


@dataclass(frozen=True)
class Endpoint:
    """A sink with its secrets read from the environment."""

    spec: SinkSpec
    url: str = ""  # webhook / slack
    secret: bytes = b""  # webhook: the HMAC key
    token: str = ""  # status sinks


@dataclass(frozen=True)
class Notice:
    """One thing to tell one sink. For status sinks `type` is the state and `repo` the repoURL."""

    app: str
    cluster: str
    type: str
    commit: str
    message: str
    time: float
    severity: str = "normal"
    sync: str = ""
    health: str = ""
    repo: str = ""


@dataclass(frozen=True)
class Request:
    """One HTTP request, ready to send."""

    method: str
    url: str
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)
    already: bytes = b""  # a 4xx body holding this means the sink already shows it: done


def resolve(spec: SinkSpec, env: Mapping[str, str]) -> Endpoint:
    """`spec` with its secrets from `env`; a :class:`ConfigError` names a variable not set."""

    def read(field_name: str, variable: str) -> str:
        value = env.get(variable, "")
        if not value:
            raise ConfigError(
                f"notification sink {spec.name}: {field_name}: the environment variable"
                f" {variable} is not set; set it before starting the hub"
            )
        return value

    if spec.is_status:
        return Endpoint(spec=spec, token=read("tokenEnv", spec.token_env))
    url = read("urlEnv", spec.url_env) if spec.url_env else spec.url
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"notification sink {spec.name}: urlEnv: {spec.url_env} does not hold an http(s) URL"
        )
    secret = read("secretEnv", spec.secret_env).encode() if spec.secret_env else b""
    return Endpoint(spec=spec, url=url, secret=secret)


def shown_endpoint(url: str) -> str:
    """`url` as logs may show it: scheme, host and port only (a Slack path is a secret)."""
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname or ''}{port}"


def context_of(app: str, cluster: str) -> str:
    return f"fleet/{app}/{cluster}"


def commit_state(status: TargetStatus) -> tuple[str, str, str] | None:
    """(state, commit, description) of a target as a commit status; None when there is none."""
    if status.suspended:
        return None
    if status.ready:
        return "success", status.applied_commit, f"Synced and Healthy on {status.cluster}"
    commit = status.desired_commit or status.applied_commit
    if not commit:
        return None
    if status.error:
        state = "error" if status.error_reason == "Unreachable" else "failure"
        return state, commit, f"{status.error_reason or 'SyncFailed'}: {status.error}"
    if status.sync == "Synced" and status.health == "Degraded":
        return "failure", commit, f"health is Degraded on {status.cluster}"
    ready = status.condition("Ready")
    waiting = f"sync {status.sync}, health {status.health}"
    if ready is not None and ready.reason == "Superseded":  # gave way to a newer commit
        waiting = ready.message
    return "pending", commit, f"{waiting} on {status.cluster}"


def sign(secret: bytes, body: bytes) -> str:
    """The ``X-Fleet-Signature`` value of `body`."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def _repo_path(url: str) -> str:
    if "://" in url:
        path = urlsplit(url).path
    elif ":" in url and "@" in url.split(":", 1)[0]:  # scp-like: git@host:owner/repo.git
        path = url.split(":", 1)[1]
    else:
        raise ValueError(f"repoURL {url!r} is not an https or ssh URL of a repository")
    path = path.strip("/")
    path = path.removesuffix(".git")
    if not path:
        raise ValueError(f"repoURL {url!r} names no repository")
    return path


def github_repo(url: str) -> str:
    """``owner/repo`` of a GitHub https or ssh URL; :class:`ValueError` when it has none."""
    path = _repo_path(url)
    parts = path.split("/")
    if len(parts) != 2 or not all(parts):
        raise ValueError(f"repoURL {url!r}: expected a GitHub repository path owner/repo")
    return path


def gitlab_project(url: str) -> str:
    """The URL-encoded project path (``group%2Fsub%2Fproject``) of a GitLab repository URL."""
    path = _repo_path(url)
    if "/" not in path:
        raise ValueError(f"repoURL {url!r}: expected a GitLab project path group/project")
    return quote(path, safe="")


def link_of(spec: SinkSpec, notice: Notice) -> str:
    """The sink's ``linkURL`` for `notice`, its placeholders filled in (URL-quoted)."""
    if not spec.link_url:
        return ""
    return spec.link_url.format(
        app=quote(notice.app, safe=""),
        cluster=quote(notice.cluster, safe=""),
        commit=quote(notice.commit, safe=""),
    )


def _json(data: Mapping[str, object]) -> bytes:
    return json.dumps(data, separators=(",", ":"), sort_keys=True).encode()


def _delivery_id(spec: SinkSpec, notice: Notice) -> str:
    parts = (spec.name, notice.app, notice.cluster, notice.type, notice.commit, repr(notice.time))
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:32]


def request_for(endpoint: Endpoint, notice: Notice) -> Request:
    """The HTTP request that tells `endpoint` about `notice` (see the module docstring)."""
    spec = endpoint.spec
    if spec.type == "webhook":
        return _webhook(endpoint, notice)
    if spec.type == "slack":
        text = slack_text(notice)
        link = link_of(spec, notice)
        body = _json({"text": f"{text} <{link}|details>" if link else text})
        return Request("POST", endpoint.url, body, _headers())
    api = spec.api_url.rstrip("/")
    link = link_of(spec, notice)
    description = notice.message[:_DESCRIPTION]
    context = context_of(notice.app, notice.cluster)
    if spec.type == "github-status":
        repo = github_repo(notice.repo)
        url = f"{api}/repos/{repo}/statuses/{notice.commit}"
        github = {"state": notice.type, "context": context, "description": description}
        if link:
            github["target_url"] = link
        body = _json(github)
        headers = _headers(
            Authorization=f"Bearer {endpoint.token}",
            Accept="application/vnd.github+json",
            **{"X-GitHub-Api-Version": "2022-11-28"},
        )
        return Request("POST", url, body, headers)
    project = gitlab_project(notice.repo)
    url = f"{api}/api/v4/projects/{project}/statuses/{notice.commit}"
    state = _GITLAB_STATES[notice.type]
    gitlab = {"state": state, "name": context, "description": description}
    if link:
        gitlab["target_url"] = link
    body = _json(gitlab)
    headers = _headers(**{"PRIVATE-TOKEN": endpoint.token})
    # GitLab refuses a status the commit already has ("Cannot transition status via :run from
    # :running"): after a hub restart the same state is posted again, and that is not a failure
    return Request("POST", url, body, headers, already=b"Cannot transition status")


def _headers(**extra: str) -> dict[str, str]:
    return {"Content-Type": "application/json", "User-Agent": _AGENT, **extra}


def _webhook(endpoint: Endpoint, notice: Notice) -> Request:
    body = _json(
        {
            "source": "fleet",
            "sink": endpoint.spec.name,
            "type": notice.type,
            "severity": notice.severity,
            "app": notice.app,
            "cluster": notice.cluster,
            "commit": notice.commit,
            "message": notice.message,
            "sync": notice.sync,
            "health": notice.health,
            "time": notice.time,
            "url": link_of(endpoint.spec, notice),
        }
    )
    headers = _headers(
        **{
            "X-Fleet-Event": notice.type,
            "X-Fleet-Delivery": _delivery_id(endpoint.spec, notice),
            "X-Fleet-Signature": sign(endpoint.secret, body),
        }
    )
    return Request("POST", endpoint.url, body, headers)


def slack_text(notice: Notice) -> str:
    """One line for a chat: what happened to which app on which cluster, at which commit."""
    icon = ":warning:" if notice.severity == "warning" else ":white_check_mark:"
    commit = f" at `{notice.commit[:12]}`" if notice.commit else ""
    return f"{icon} *{notice.app}* on *{notice.cluster}*: {notice.type}{commit}: {notice.message}"
