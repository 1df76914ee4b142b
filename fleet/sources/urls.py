"""Repository identity: one normalised URL per repository, whatever spelling an app uses.

Two apps that write ``https://Git.Example.com/team/app.git/`` and ``https://git.example.com/team/app``
read the same repository, so they share one mirror and one fetch. The identity (:attr:`RepoId.key`)
lowercases scheme and host, drops a default port, a trailing slash and ``.git``; scp-like
``git@host:org/repo`` becomes ``ssh://git@host/org/repo``; a local path becomes a ``file://`` URL.
The URL git fetches from (:attr:`RepoId.fetch_url`) keeps the spelling first given, since some
servers care about ``.git``. A password inside a URL is refused: secrets live in the credentials
file, never in ``fleet.yaml`` or a command line.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from fleet.errors import ConfigError

__all__ = ["RepoId", "repo_id"]

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


def repo_id(url: str) -> RepoId:
    """The :class:`RepoId` of `url` (https, http, ssh, scp-like, file:// or a local path)."""
    url = url.strip()
    if not url:
        raise ConfigError("repoURL is empty")
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
        raise ConfigError(f"repoURL {url!r}: unsupported scheme {scheme!r}")
    if parts.password is not None:
        raise ConfigError(
            f"repoURL for host {parts.hostname}: a password in the URL is refused; "
            "put it in the credentials file"
        )
    path = parts.path.rstrip("/")
    if scheme == "file":
        return urlunsplit(("file", "", path, "", ""))
    path = path.removesuffix(".git")
    host = (parts.hostname or "").lower()
    if not host:
        raise ConfigError(f"repoURL {url!r} has no host")
    port = parts.port
    netloc = host if port in (None, _DEFAULT_PORTS.get(scheme)) else f"{host}:{port}"
    if parts.username and scheme == "ssh":
        netloc = f"{parts.username}@{netloc}"
    return urlunsplit((scheme, netloc, path, "", ""))
