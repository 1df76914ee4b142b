"""``fleet status`` exit codes and the CLI's one-line errors, run as the command line.

The status document is served over real HTTP by a small aiohttp server of the test: the contract
under test is the command's reading of ``/api/status`` (its exit code, its lines), so any hub
state can be set up exactly, including ones a running hub reaches only after minutes.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import pytest
from aiohttp import web

pytestmark = pytest.mark.anyio

FLEET = [sys.executable, "-m", "fleet.cli.main"]


def _cell(app: str, cluster: str, sync: str = "Synced", health: str = "Healthy") -> dict[str, Any]:
    return {"app": app, "cluster": cluster, "sync": sync, "health": health, "revision": "abc1234"}


def _green() -> dict[str, Any]:
    return {
        "clusters": [{"name": "eu", "state": "ready"}, {"name": "us", "state": "ready"}],
        "apps": [_cell("web", "eu"), _cell("web", "us")],
        "config_error": "",
    }


class StatusServer:
    """Serves `document` (or a raw answer) at /api/status on 127.0.0.1."""

    def __init__(self) -> None:
        self.document: dict[str, Any] | None = _green()
        self.raw: tuple[int, str] | None = None
        self.url = ""

    async def handle(self, _: web.Request) -> web.Response:
        if self.raw is not None:
            return web.Response(status=self.raw[0], text=self.raw[1])
        return web.json_response(self.document)


@pytest.fixture
async def served() -> AsyncIterator[StatusServer]:
    status = StatusServer()
    app = web.Application()
    app.router.add_get("/api/status", status.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    status.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    yield status
    await runner.cleanup()


async def _status(url: str, *extra: str) -> subprocess.CompletedProcess[str]:
    done = await anyio.run_process([*FLEET, "status", "--url", url, *extra], check=False)
    return subprocess.CompletedProcess(
        done.args, done.returncode, done.stdout.decode(), done.stderr.decode()
    )


def _parked(doc: dict[str, Any]) -> None:
    doc["clusters"][1] = {"name": "us", "state": "parked", "error": "unreachable: refused"}


def _out_of_sync(doc: dict[str, Any]) -> None:
    doc["apps"][1] = _cell("web", "us", sync="OutOfSync")


def _degraded(doc: dict[str, Any]) -> None:
    doc["apps"][0] = _cell("web", "eu", health="Degraded")


def _config_error(doc: dict[str, Any]) -> None:
    doc["config_error"] = "fleet.yaml: apps[0]: unknown field 'cluster'"


def _a_problem(document: dict[str, Any]) -> None:
    document["problems"] = ["history database postgresql://db/fleet: unreachable"]


def _connecting(doc: dict[str, Any]) -> None:
    doc["clusters"][0]["state"] = "connecting"


async def test_all_green_exits_0_and_prints_the_matrix(served: StatusServer) -> None:
    done = await _status(served.url)
    assert done.returncode == 0, done.stderr
    assert "Synced/Healthy @abc1234" in done.stdout and done.stderr == ""
    as_json = await _status(served.url, "--json")
    assert as_json.returncode == 0 and json.loads(as_json.stdout) == served.document


@pytest.mark.parametrize(
    ("spoil", "said"),
    [
        (_parked, "clusters not ready: us"),
        (_connecting, "clusters not ready: eu"),
        (
            _out_of_sync,
            "1 of 2 targets not ready (Synced/Healthy on the desired commit, not suspended)",
        ),
        (
            _degraded,
            "1 of 2 targets not ready (Synced/Healthy on the desired commit, not suspended)",
        ),
        (_config_error, "the config has an error"),
        (_a_problem, "history database postgresql://db/fleet: unreachable"),
    ],
)
async def test_anything_not_green_exits_1_and_says_what(
    served: StatusServer, spoil: Callable[[dict[str, Any]], None], said: str
) -> None:
    assert served.document is not None
    spoil(served.document)
    for extra in ((), ("--json",)):
        done = await _status(served.url, *extra)
        assert done.returncode == 1, (extra, done.stdout, done.stderr)
        assert done.stderr.strip() == f"not green: {said}"
        if extra:
            json.loads(done.stdout)  # the document still printed whole


async def test_unknown_fields_of_a_newer_hub_are_ignored(served: StatusServer) -> None:
    assert served.document is not None
    served.document["apps"][0]["conditions"] = [{"type": "Ready"}]
    served.document["clusters"][0]["probe_ms"] = 3
    done = await _status(served.url)
    assert done.returncode == 0, done.stderr


async def test_an_unreachable_or_foreign_hub_exits_3(served: StatusServer) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    down = await _status(closed)
    assert down.returncode == 3 and down.stderr.startswith("error: cannot reach the hub at ")
    assert len(down.stderr.splitlines()) == 1
    served.raw = (500, "oops")
    broken = await _status(served.url)
    assert broken.returncode == 3 and "answered HTTP 500" in broken.stderr
    served.raw = (200, "<html>not fleet</html>")
    foreign = await _status(served.url)
    assert foreign.returncode == 3 and "did not answer with the hub's status JSON" in foreign.stderr
    assert "Traceback" not in down.stderr + broken.stderr + foreign.stderr


async def test_usage_errors_are_one_line_and_exit_2() -> None:
    for argv, said in (
        (["status", "--url", "127.0.0.1:8080"], "error: --url 127.0.0.1:8080: expected http"),
        (["run", "--log-level", "verbose"], "error: log level 'verbose' is not one of debug"),
        (["run", "--log-format", "xml"], "error: log format 'xml' is not one of logfmt, json"),
        (["run", "--listen", "127.0.0.1:8080x"], "error: --listen 127.0.0.1:8080x: expected"),
        (["run", "--workers", "0"], "error: --workers 0: must be greater than 0"),
        (["run", "--poll-interval", "-1"], "error: --poll-interval -1: must be greater than 0"),
    ):
        done = await anyio.run_process([*FLEET, *argv], check=False)
        err = done.stderr.decode()
        assert done.returncode == 2, (argv, err)
        assert err.startswith(said) and len(err.splitlines()) == 1, (argv, err)


async def test_a_pipe_closed_early_exits_quietly(served: StatusServer) -> None:
    """`fleet status | head -1` with a matrix far larger than a pipe's buffer."""
    served.document = {
        "clusters": [{"name": f"cluster-{i}", "state": "ready"} for i in range(12)],
        "apps": [_cell(f"app-{a}", f"cluster-{i}") for a in range(400) for i in range(12)],
        "config_error": "",
    }
    script = (
        f"{sys.executable} -m fleet.cli.main status --url {served.url} | head -1; "
        'echo "status-exit=${PIPESTATUS[0]}" >&2'
    )
    done = await anyio.run_process(["bash", "-c", script], check=False)
    err = done.stderr.decode()
    assert done.stdout.decode().count("\n") == 1 and "cluster-0" in done.stdout.decode()
    assert err.strip() == "status-exit=141", err
