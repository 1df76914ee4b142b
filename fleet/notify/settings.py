"""The ``notifications:`` block of the config: one :class:`SinkSpec` per sink, validated (pure).

A sink is where fleet tells people what happened to its targets:

- ``webhook``: a generic JSON POST of each event, signed with HMAC-SHA256 of the body
  (``X-Fleet-Signature: sha256=<hex>``), the key read from ``secretEnv``;
- ``slack``: a Slack-compatible incoming webhook (``{"text": ...}``), its URL (which is itself the
  secret) from ``urlEnv`` or ``url``;
- ``github-status`` / ``gitlab-status``: a commit status per target, context
  ``fleet/<app>/<cluster>``, so the commit itself shows which clusters it reached; the token from
  ``tokenEnv``, the API at ``apiURL``.

Secrets never live in the file: only the names of environment variables that hold them. Event
sinks take ``on`` (event types, with defaults that match what an operator wants paged about);
every sink takes ``apps`` and ``clusters`` filters (globs) and a ``linkURL`` to click through to
(``{app}``, ``{cluster}`` and ``{commit}`` filled in: a commit status's target URL). Every key is
checked: an unknown one is refused with its path and a "did you mean", so a typo never silently
widens or silences a sink.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

from fleet.errors import ConfigError

__all__ = [
    "DEFAULT_EVENTS",
    "EVENT_TYPES",
    "SINK_TYPES",
    "STATUS_TYPES",
    "DeliverySettings",
    "SinkSpec",
    "notifications_schema",
    "parse_notifications",
]

EVENT_TYPES = (
    "Synced",
    "Healed",
    "SyncFailed",
    "RenderFailed",
    "Conflict",
    "Refused",
    "PruneRefused",
    "ReadFailed",
    "InternalError",
    "Unreachable",
    "Degraded",
    "HealthChanged",
    "Recovered",
    "Drift",
    "Suspended",
    "Resumed",
    "Removed",
    "Superseded",
)
"""Every event type a target can produce (:class:`fleet.report.TargetEvent` and error reasons)."""

DEFAULT_EVENTS = (
    "Synced",
    "SyncFailed",
    "RenderFailed",
    "Conflict",
    "Refused",
    "PruneRefused",
    "Unreachable",
    "Degraded",
    "Recovered",
)
"""What an event sink hears when it names no ``on``: failures, degraded, recovered, new commits."""

EVENT_SINKS = ("webhook", "slack")
STATUS_TYPES = ("github-status", "gitlab-status")
SINK_TYPES = (*EVENT_SINKS, *STATUS_TYPES)

_DEFAULT_API = {"github-status": "https://api.github.com", "gitlab-status": "https://gitlab.com"}
_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_ENV = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_KEYS = {
    "name",
    "type",
    "url",
    "urlEnv",
    "secretEnv",
    "tokenEnv",
    "apiURL",
    "on",
    "apps",
    "clusters",
    "timeout",
    "attempts",
    "queueSize",
    "dedupWindow",
    "linkURL",
}
_KEYS_OF = {
    "webhook": {"url", "urlEnv", "secretEnv", "on"},
    "slack": {"url", "urlEnv", "on"},
    "github-status": {"apiURL", "tokenEnv"},
    "gitlab-status": {"apiURL", "tokenEnv"},
}
_COMMON = _KEYS - {"url", "urlEnv", "secretEnv", "tokenEnv", "apiURL", "on"}


@dataclass(frozen=True)
class SinkSpec:
    """One sink as declared; secrets are named by environment variable, never held here."""

    name: str
    type: str  # webhook | slack | github-status | gitlab-status
    url: str = ""  # webhook / slack: the endpoint, when not from url_env
    url_env: str = ""  # webhook / slack: the variable holding the endpoint
    secret_env: str = ""  # webhook: the variable holding the HMAC key
    token_env: str = ""  # github-status / gitlab-status: the variable holding the API token
    api_url: str = ""  # github-status / gitlab-status: the API's base URL
    on: tuple[str, ...] = ()  # event sinks: the event types sent
    apps: tuple[str, ...] = ("*",)  # globs of app names
    clusters: tuple[str, ...] = ("*",)  # globs of cluster names
    timeout: float = 10.0  # seconds per request
    attempts: int = 5  # tries per notification (retries on 5xx, 429, timeouts, connections)
    queue_size: int = 1000  # notifications waiting; the oldest is dropped when full
    dedup_window: float = 300.0  # seconds in which the same event of a target is sent once
    link_url: str = ""  # where a reader clicks through: {app}, {cluster}, {commit} filled in

    @property
    def is_status(self) -> bool:
        """A commit-status sink (it follows the target's state, not its events)."""
        return self.type in STATUS_TYPES


@dataclass(frozen=True)
class DeliverySettings:
    """How the notifier retries: waits of `initial` doubling up to `cap`, plus 0 to `jitter` s.

    A 429's Retry-After is honoured up to `max_retry_after` seconds.
    """

    initial: float = 1.0
    cap: float = 60.0
    jitter: float = 0.2
    max_retry_after: float = 120.0


def parse_notifications(data: Mapping[str, Any], *, where: str = "config") -> tuple[SinkSpec, ...]:
    """The sinks of the ``notifications:`` list of the config document `data` (none if absent).

    `where` names the file in errors. Raises :class:`ConfigError` naming the field at fault.
    """
    block = data.get("notifications")
    if block is None:
        return ()
    if not isinstance(block, Sequence) or isinstance(block, str | bytes):
        raise ConfigError(
            f"{where}: notifications: expected a list of sinks, got {type(block).__name__}"
        )
    specs: list[SinkSpec] = []
    seen: set[str] = set()
    for index, entry in enumerate(block):
        spec = _sink(entry, f"{where}: notifications[{index}]")
        if spec.name in seen:
            raise ConfigError(
                f"{where}: notifications[{index}].name: {spec.name!r} is used by another sink;"
                " give each sink its own name"
            )
        seen.add(spec.name)
        specs.append(spec)
    return tuple(specs)


def _sink(entry: Any, where: str) -> SinkSpec:
    if not isinstance(entry, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {type(entry).__name__}")
    # YAML 1.1 (PyYAML) reads a bare `on:` key as the boolean true
    entry = {("on" if key is True else key): value for key, value in entry.items()}
    for key in entry:
        if key not in _KEYS:
            raise ConfigError(f"{where}: unknown field {key!r}{_suggest(str(key), _KEYS)}")
    fields = _Reader(entry, where)
    name = fields.text("name", required=True)
    if not _NAME.fullmatch(name) or len(name) > 63:
        raise ConfigError(
            f"{where}.name: {name!r} is not a valid sink name (lower-case letters, digits and '-')"
        )
    kind = fields.text("type", required=True)
    if kind not in SINK_TYPES:
        raise ConfigError(
            f"{where}.type: unknown sink type {kind!r}{_suggest(kind, SINK_TYPES)}"
            f" (one of {', '.join(SINK_TYPES)})"
        )
    allowed = _KEYS_OF[kind] | _COMMON
    for key in entry:
        if key not in allowed:
            raise ConfigError(f"{where}.{key}: not a field of a {kind} sink")
    spec = SinkSpec(
        name=name,
        type=kind,
        url=fields.url("url"),
        url_env=fields.env("urlEnv"),
        secret_env=fields.env("secretEnv"),
        token_env=fields.env("tokenEnv"),
        api_url=fields.url("apiURL") or _DEFAULT_API.get(kind, ""),
        on=fields.events("on") if kind in EVENT_SINKS else (),
        apps=fields.globs("apps"),
        clusters=fields.globs("clusters"),
        timeout=fields.positive("timeout", 10.0),
        attempts=int(fields.positive("attempts", 5, integer=True)),
        queue_size=int(fields.positive("queueSize", 1000, integer=True)),
        dedup_window=fields.positive("dedupWindow", 300.0, zero=True),
        link_url=fields.link("linkURL"),
    )
    return _complete(spec, where)


def _complete(spec: SinkSpec, where: str) -> SinkSpec:
    if spec.type in EVENT_SINKS:
        if bool(spec.url) == bool(spec.url_env):
            raise ConfigError(
                f"{where}: a {spec.type} sink needs exactly one of url or urlEnv"
                " (urlEnv when the URL holds a secret, as a Slack webhook's does)"
            )
        if spec.type == "webhook" and not spec.secret_env:
            raise ConfigError(
                f"{where}.secretEnv: required: name the environment variable holding the key"
                " that signs each request (X-Fleet-Signature)"
            )
        if not spec.on:
            spec = replace(spec, on=DEFAULT_EVENTS)
    elif not spec.token_env:
        raise ConfigError(
            f"{where}.tokenEnv: required: name the environment variable holding the API token"
        )
    return spec


def _suggest(word: str, choices: Sequence[str] | set[str]) -> str:
    close = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.6)
    if not close:
        close = [c for c in sorted(choices) if c.lower() == word.lower()]
    return f" (did you mean {close[0]!r}?)" if close else ""


class _Reader:
    """Typed reads of one sink's mapping, each error naming the field."""

    def __init__(self, data: Mapping[str, Any], where: str) -> None:
        self.data = data
        self.where = where

    def text(self, key: str, *, required: bool = False) -> str:
        value = self.data.get(key)
        if value is None:
            if required:
                raise ConfigError(f"{self.where}.{key}: required")
            return ""
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"{self.where}.{key}: expected a non-empty string, got {value!r}")
        return value.strip()

    def url(self, key: str) -> str:
        value = self.text(key)
        if not value:
            return ""
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"{self.where}.{key}: expected an http(s) URL, got {value!r}")
        if parts.username or parts.password:
            raise ConfigError(
                f"{self.where}.{key}: credentials in the URL are refused; use an environment"
                " variable (urlEnv, tokenEnv, secretEnv)"
            )
        return value.rstrip("/") if key == "apiURL" else value

    def link(self, key: str) -> str:
        value = self.text(key)
        try:
            filled = value.format(app="app", cluster="cluster", commit="0" * 40)
        except (KeyError, IndexError, ValueError) as exc:
            raise ConfigError(
                f"{self.where}.{key}: {value!r} has a placeholder other than {{app}}, {{cluster}}"
                f" and {{commit}} ({type(exc).__name__}: {exc})"
            ) from None
        parts = urlsplit(filled)
        if value and (parts.scheme not in ("http", "https") or not parts.hostname):
            raise ConfigError(f"{self.where}.{key}: expected an http(s) URL, got {value!r}")
        return value

    def env(self, key: str) -> str:
        value = self.text(key)
        if value and not _ENV.fullmatch(value):
            raise ConfigError(
                f"{self.where}.{key}: {value!r} is not an environment variable name"
                " (the secret itself never goes in the config)"
            )
        return value

    def _names(self, key: str) -> tuple[str, ...]:
        value = self.data.get(key)
        if value is None:
            return ()
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, Sequence) or not all(
            isinstance(v, str) and v.strip() for v in value
        ):
            raise ConfigError(f"{self.where}.{key}: expected a list of names, got {value!r}")
        return tuple(v.strip() for v in value)

    def events(self, key: str) -> tuple[str, ...]:
        names = self._names(key)
        for name in names:
            if name not in EVENT_TYPES:
                raise ConfigError(
                    f"{self.where}.{key}: unknown event type {name!r}"
                    f"{_suggest(name, EVENT_TYPES)} (one of {', '.join(EVENT_TYPES)})"
                )
        return tuple(dict.fromkeys(names))

    def globs(self, key: str) -> tuple[str, ...]:
        if key in self.data and not self._names(key):
            raise ConfigError(
                f"{self.where}.{key}: an empty list would match nothing; omit it to match all"
            )
        return self._names(key) or ("*",)

    def positive(
        self, key: str, default: float, *, integer: bool = False, zero: bool = False
    ) -> float:
        value = self.data.get(key, default)
        wrong = isinstance(value, bool) or not isinstance(value, int | float)
        if not wrong and integer and not isinstance(value, int):
            wrong = True
        if wrong or value < 0 or (value == 0 and not zero):
            expected = "a positive whole number" if integer else "a positive number of seconds"
            raise ConfigError(f"{self.where}.{key}: expected {expected}, got {value!r}")
        return float(value)


_DOCS = {
    "name": ("string", "the sink's name (lower-case letters, digits and '-'), unique"),
    "type": ("string", "webhook | slack | github-status | gitlab-status"),
    "url": ("string", "webhook / slack: the endpoint (use urlEnv when it holds a secret)"),
    "urlEnv": ("string", "webhook / slack: the environment variable holding the endpoint"),
    "secretEnv": ("string", "webhook: the environment variable holding the HMAC-SHA256 key"),
    "tokenEnv": ("string", "github-status / gitlab-status: the variable holding the API token"),
    "apiURL": ("string", "github-status / gitlab-status: the API's base URL"),
    "on": ("array", "webhook / slack: the event types sent"),
    "apps": ("array", "globs of the app names this sink hears about (default: all)"),
    "clusters": ("array", "globs of the cluster names this sink hears about (default: all)"),
    "timeout": ("number", "seconds per request (default 10)"),
    "attempts": ("integer", "tries per notification (default 5)"),
    "queueSize": ("integer", "notifications waiting before the oldest is dropped (default 1000)"),
    "dedupWindow": ("number", "seconds in which the same event of a target is sent once (300)"),
    "linkURL": ("string", "a link for readers; {app}, {cluster} and {commit} are filled in"),
}


def notifications_schema() -> dict[str, Any]:
    """A JSON Schema of the ``notifications:`` list, for editors (``fleet schema``)."""
    properties: dict[str, Any] = {}
    for key in sorted(_KEYS):
        kind, description = _DOCS[key]
        prop: dict[str, Any] = {"type": kind, "description": description}
        if key == "type":
            prop["enum"] = list(SINK_TYPES)
        if key == "on":
            prop["items"] = {"type": "string", "enum": list(EVENT_TYPES)}
        if key in ("apps", "clusters"):
            prop["items"] = {"type": "string"}
            prop["minItems"] = 1
        properties[key] = prop
    return {
        "type": "array",
        "description": "where fleet tells people what happened to its targets",
        "items": {
            "type": "object",
            "required": ["name", "type"],
            "additionalProperties": False,
            "properties": properties,
        },
    }
