"""Repository identity: one normalised URL per repository, whatever spelling an app uses.

Two apps that write ``https://Git.Example.com/team/app.git/`` and ``https://git.example.com/team/app``
read the same repository, so they share one mirror and one fetch. The identity (:attr:`RepoId.key`)
lowercases scheme and host, drops a default port, a trailing slash and ``.git``; scp-like
``git@host:org/repo`` becomes ``ssh://git@host/org/repo``; a local path becomes a ``file://`` URL.
The URL git fetches from (:attr:`RepoId.fetch_url`) keeps the spelling first given, since some
servers care about ``.git``.

Credentials inside an http(s) URL are refused, a lone user name as much as a password (``https://
ghp_xxx@github.com/...`` and ``oauth2:TOKEN@`` are tokens): secrets live in the credentials file
(``fleet run --credentials FILE``), never in ``fleet.yaml``, a command line, a log or the status
API. An ssh user (``git@host``) is a name, not a secret, and stays. :func:`check_repo_url` is the
check at config load, naming the app; no error of this module echoes a URL's userinfo.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from fleet.errors import ConfigError
from fleet.logs import scrub

__all__ = ["CREDENTIALS_HINT", "RepoId", "check_repo_url", "repo_id"]

CREDENTIALS_HINT = (
    "put it in the credentials file of `fleet run --credentials FILE` "
    "(YAML: credentials: [{url: https://HOST/ORG/, username: USER, token: TOKEN}])"
)

_SCP_LIKE = re.compile(r"^(?:(?P<user>[^@/:]+)@)?(?P<host>[^/:]+):(?P<path>[^/].*)$")
_DEFAULT_PORTS = {"https": 443, "http": 80, "ssh": 22}


@dataclass(frozen=True)
class RepoId:
    """A repository: `key` identifies it, `fetch_url` is what git is given."""

    key: str
    fetch_url: str

    @property
    def scheme(self) -> str:
        return self.key.split("://", 1)[0]

    def mirror_name(self) -> str:
        """A directory name: readable, filesystem-safe and unique to `key`."""
        rest = self.key.split("://", 1)[1]
        slug = re.sub(r"[^A-Za-z0-9._-]+", "_", rest).strip("_")[-60:]
        return f"{slug}-{hashlib.sha256(self.key.encode()).hexdigest()[:12]}"

    def __str__(self) -> str:
        return self.key


def check_repo_url(url: str, *, app: str) -> None:
    """Refuse `url` as the repoURL of `app` if fleet cannot use it (credentials, scheme, host).

    Raises :class:`ConfigError` naming the app and the host, never a secret.
    """
    try:
        repo_id(url)
    except ConfigError as exc:
        raise ConfigError(f"app {app}: {exc}") from None


def repo_id(url: str) -> RepoId:
    """The :class:`RepoId` of `url` (https, http, ssh, scp-like, file:// or a local path)."""
    url = url.strip()
    if not url:
        raise ConfigError("repoURL is empty")
    _refuse_credentials(url)
    if "://" not in url:
        scp = _SCP_LIKE.match(url)
        if scp and not url.startswith(("/", ".", "~")):
            user = f"{scp['user']}@" if scp["user"] else ""
            fetch = f"ssh://{user}{scp['host']}/{scp['path']}"
            return RepoId(key=_normalise(fetch), fetch_url=url)
        path = Path(url).expanduser().resolve()
        return RepoId(key=_normalise(path.as_uri()), fetch_url=path.as_uri())
    return RepoId(key=_normalise(url), fetch_url=url)


def _normalise(url: str) -> str:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in {"https", "http", "ssh", "file"}:
        raise ConfigError(
            f"repoURL {scrub(url)}: unsupported scheme '{scheme}' (use https, http, ssh or file)"
        )
    path = parts.path.rstrip("/")
    if scheme == "file":
        return urlunsplit(("file", "", path, "", ""))
    path = path.removesuffix(".git")
    host = (parts.hostname or "").lower()
    if not host:
        raise ConfigError(f"repoURL {scrub(url)} has no host")
    port = parts.port
    netloc = host if port in (None, _DEFAULT_PORTS.get(scheme)) else f"{host}:{port}"
    if parts.username and scheme == "ssh":
        netloc = f"{parts.username}@{netloc}"
    return urlunsplit((scheme, netloc, path, "", ""))


def _refuse_credentials(url: str) -> None:
    """No userinfo in an http(s) URL, no password in any URL."""
    password: str | None
    username: str | None
    host: str | None
    if "://" not in url:  # scp-like user@host:path; user:secret@host:path is a password
        head = url.split("/", 1)[0]
        user, at, rest = head.rpartition("@")
        password, username, web = ("" if ":" in user else None), user, False
        host = rest.split(":", 1)[0]
        if not at:
            return
    else:
        try:
            parts = urlsplit(url)
            password, username, host = parts.password, parts.username, parts.hostname
            _ = parts.port
        except ValueError:  # a bad port, a bad IPv6 host
            raise ConfigError(
                f"repoURL {scrub(url)} is not a valid URL (check the host and port)"
            ) from None
        web = parts.scheme.lower() in {"http", "https"}
    if password is None and not (web and username):
        return
    what = "a password" if password is not None else "a user name (often a token)"
    raise ConfigError(
        f"repoURL for host {host or '(none)'} holds {what}; credentials in a URL are refused, "
        f"they would show in logs and git's command line; {CREDENTIALS_HINT}"
    )
