"""Real git for tests: a bare remote on disk, a working clone that pushes, and an HTTP server.

:class:`Remote` makes a bare repository and a work tree; ``commit({path: text})`` writes files,
commits and pushes, returning the new sha. :class:`GitHttpServer` serves a directory of bare
repositories through ``git http-backend`` (CGI) on 127.0.0.1, optionally behind basic auth, and
counts requests, fetches (protocol v2 ``command=fetch``) and ref listings (``command=ls-refs``).
"""

from __future__ import annotations

import base64
import gzip
import os
import re
import subprocess
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

GIT_ENV = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.com",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.com",
    "GIT_CONFIG_NOSYSTEM": "1",
}


def git(*args: str, cwd: Path) -> str:
    env = dict(os.environ, **GIT_ENV)
    out = subprocess.run(
        ["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True
    )
    return out.stdout.strip()


class Remote:
    """A bare repository `bare` and a work tree that pushes to it."""

    def __init__(self, root: Path, name: str = "repo") -> None:
        self.bare = root / f"{name}.git"
        self.work = root / f"{name}-work"
        self.bare.mkdir(parents=True)
        git("init", "--quiet", "--bare", "--initial-branch=main", str(self.bare), cwd=root)
        git("clone", "--quiet", str(self.bare), str(self.work), cwd=root)
        git("checkout", "--quiet", "-B", "main", cwd=self.work)

    @property
    def url(self) -> str:
        return self.bare.as_uri()

    def commit(
        self, files: Mapping[str, str | None], *, message: str = "change", branch: str = "main"
    ) -> str:
        """Write `files` (None removes one), commit, push `branch`; the new sha."""
        for rel, text in files.items():
            path = self.work / rel
            if text is None:
                git("rm", "-r", "--quiet", rel, cwd=self.work)
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        git("add", "--all", cwd=self.work)
        git("commit", "--quiet", "--allow-empty", "-m", message, cwd=self.work)
        git("push", "--quiet", "--force", "origin", f"HEAD:refs/heads/{branch}", cwd=self.work)
        return git("rev-parse", "HEAD", cwd=self.work)

    def symlink(self, rel: str, target: str) -> str:
        path = self.work / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.symlink_to(target)
        return self.commit({}, message=f"symlink {rel}")

    def tag(self, name: str) -> None:
        git("tag", "-a", "-m", name, name, cwd=self.work)
        git("push", "--quiet", "origin", name, cwd=self.work)


@dataclass
class Counts:
    requests: list[str] = field(default_factory=list)
    fetches: int = 0
    listings: int = 0  # ref listings: protocol v2 ``command=ls-refs`` (ls-remote, a refspec fetch)
    prefixes: list[tuple[str, ...]] = field(default_factory=list)  # each listing's ref-prefixes
    denied: int = 0


class GitHttpServer:
    """``git http-backend`` over HTTP for the repositories under `root`."""

    def __init__(self, root: Path, *, auth: tuple[str, str] | None = None) -> None:
        self.root = root
        self.auth = auth
        self.counts = Counts()
        self.refuse_fetches = False  # answer protocol v2 fetches 500 (listings still served)
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/{name}"

    def __enter__(self) -> GitHttpServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                self._cgi(b"")

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self._cgi(self.rfile.read(length))

            def _cgi(self, body: bytes) -> None:
                if not self._authorised():
                    return
                parts = urlsplit(self.path)
                raw = body
                if self.headers.get("Content-Encoding") == "gzip":
                    raw = gzip.decompress(body)
                with server._lock:
                    server.counts.requests.append(f"{self.command} {parts.path}")
                    if parts.path.endswith("git-upload-pack") and (
                        b"command=fetch" in raw or not self.headers.get("Git-Protocol")
                    ):
                        server.counts.fetches += 1
                        refused = server.refuse_fetches and b"command=fetch" in raw
                    else:
                        refused = False
                    if parts.path.endswith("git-upload-pack") and b"command=ls-refs" in raw:
                        server.counts.listings += 1
                        found = re.findall(rb"ref-prefix ([^\n\0]+)\n", raw)
                        server.counts.prefixes.append(tuple(p.decode() for p in found))
                if refused:
                    self.send_response(500)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                env = {
                    "PATH": os.environ["PATH"],
                    "GIT_PROJECT_ROOT": str(server.root),
                    "GIT_HTTP_EXPORT_ALL": "1",
                    "REQUEST_METHOD": self.command,
                    "PATH_INFO": parts.path,
                    "QUERY_STRING": parts.query,
                    "CONTENT_TYPE": self.headers.get("Content-Type", ""),
                    "CONTENT_LENGTH": str(len(body)),
                    "REMOTE_ADDR": "127.0.0.1",
                    "GIT_PROTOCOL": self.headers.get("Git-Protocol", ""),
                    "HTTP_CONTENT_ENCODING": self.headers.get("Content-Encoding", ""),
                }
                out = subprocess.run(
                    ["git", "http-backend"], input=body, env=env, capture_output=True, check=False
                ).stdout
                head, _, payload = out.partition(b"\r\n\r\n")
                status = 200
                headers: list[tuple[str, str]] = []
                for line in head.decode().split("\r\n"):
                    name, _, value = line.partition(":")
                    if name.lower() == "status":
                        status = int(value.split()[0])
                    elif name:
                        headers.append((name, value.strip()))
                self.send_response(status)
                for name, value in headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def _authorised(self) -> bool:
                if server.auth is None:
                    return True
                expected = base64.b64encode(":".join(server.auth).encode()).decode()
                if self.headers.get("Authorization") == f"Basic {expected}":
                    return True
                with server._lock:
                    server.counts.denied += 1
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="git"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return False

        return Handler
