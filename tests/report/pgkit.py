"""A real PostgreSQL server for tests: ``initdb`` + ``postgres`` in a temporary directory.

The distribution's binaries (``make system`` installs them; looked for in
/usr/lib/postgresql/*/bin, then on PATH), listening on 127.0.0.1 on a free port, with password
(SCRAM) authentication for a superuser ``fleet``. PostgreSQL refuses to run as root, so when the
tests are root the server runs as the ``postgres`` system user (``runuser``).
:meth:`Postgres.stop` and :meth:`Postgres.start` take the database away and bring it back on the
same port; :meth:`Postgres.database` makes a fresh database per test.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg

PASSWORD = "pg-test-secret-4711"


def bin_dir() -> Path | None:
    """Where initdb is, or None when PostgreSQL is not installed."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Postgres:
    """One running server: `url` reaches its ``fleet`` database as the ``fleet`` superuser."""

    bin_dir: Path
    root: Path
    port: int
    as_user: list[str]

    @property
    def data(self) -> Path:
        return self.root / "data"

    def url(self, database: str = "fleet", *, password: bool = True) -> str:
        secret = f":{PASSWORD}" if password else ""
        return f"postgresql://fleet{secret}@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str) -> None:
        subprocess.run([*self.as_user, *args], check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        self._run(
            str(self.bin_dir / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.root / "server.log"),
            "-o",
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1",
            "-w",
            "-t",
            "60",
            "start",
        )

    def stop(self) -> None:
        self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def database(self, name: str) -> str:
        """A new empty database `name`; its URL (with the password)."""
        with psycopg.connect(self.url(), autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}"')
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


@contextlib.contextmanager
def running(binaries: Path) -> Iterator[Postgres]:
    """A fresh server for the duration of the block."""
    as_user: list[str] = []
    root = Path(tempfile.mkdtemp(prefix="fleet-pg-"))
    if os.geteuid() == 0:  # postgres refuses root: run it as the postgres system user
        as_user = ["runuser", "-u", "postgres", "--"]
        shutil.chown(root, user="postgres")
    pwfile = root / "pwfile"
    pwfile.write_text(PASSWORD + "\n")
    if as_user:
        shutil.chown(pwfile, user="postgres")
    server = Postgres(bin_dir=binaries, root=root, port=_free_port(), as_user=as_user)
    server._run(
        str(binaries / "initdb"),
        "-D",
        str(server.data),
        "-U",
        "fleet",
        "--pwfile",
        str(pwfile),
        "--auth-host=scram-sha-256",
        "--auth-local=trust",
        "-E",
        "UTF8",
    )
    server.start()
    try:
        with psycopg.connect(server.url("postgres"), autocommit=True) as connection:
            connection.execute("CREATE DATABASE fleet")
        yield server
    finally:
        with contextlib.suppress(subprocess.SubprocessError):
            server.stop()
        shutil.rmtree(root, ignore_errors=True)
