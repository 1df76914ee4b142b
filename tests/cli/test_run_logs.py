"""``fleet run``'s own lines: start, listening and stop whatever the level, in logfmt and JSON.

The hub runs as a subprocess (:class:`bench.hubproc.HubProcess`, which finds its port in the
listening line) with no apps and no clusters, so no kit is needed; SIGTERM ends it.
"""

from __future__ import annotations

import json
import os
import shlex
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from bench.hubproc import SECRET, HubProcess


def _run(tmp_path: Path, *, level: str, fmt: str) -> list[str]:
    (tmp_path / "fleet.yaml").write_text("apps: []\n")
    hub = HubProcess(
        tmp_path,
        poll_interval=60,
        resync_interval=60,
        log_level=level,
        extra_args=["--log-format", fmt],
    )
    with hub:
        assert hub.port > 0 and hub.alive()
    assert hub._popen is not None and hub._popen.returncode == 0
    return hub.log.read_text().splitlines()


def _logfmt(line: str) -> dict[str, str]:
    return dict(item.split("=", 1) for item in shlex.split(line))


@pytest.mark.parametrize("level", ["warning", "INFO"])
def test_logfmt_start_listening_stop_lines_at_any_level(tmp_path: Path, level: str) -> None:
    lines = _run(tmp_path, level=level, fmt="logfmt")
    events = [_logfmt(line) for line in lines]
    assert all("ts" in e and "level" in e and "logger" in e for e in events), lines
    named = {e.get("event"): e for e in events}
    start, listening, stop = named["hub_start"], named["hub_listening"], named["hub_stop"]
    assert start["version"] and start["config"].endswith("fleet.yaml")
    assert start["clusters"].endswith("clusters") and start["listen"] == "127.0.0.1:0"
    assert listening["url"].startswith("http://127.0.0.1:")
    assert stop["reason"] == "SIGTERM" and float(stop["uptime_s"]) > 0
    assert [e.get("event") for e in events].index("hub_stop") == len(events) - 1
    assert ("hub_ready" in named) == (level == "INFO")  # an ordinary info line obeys the level
    assert SECRET not in "\n".join(lines)


def test_json_lines_are_one_object_each(tmp_path: Path) -> None:
    lines = _run(tmp_path, level="info", fmt="json")
    events = [json.loads(line) for line in lines]
    assert {"hub_start", "hub_ready", "hub_listening", "hub_stop"} <= {
        e.get("event") for e in events
    }
    stop = events[-1]
    assert stop["event"] == "hub_stop" and stop["reason"] == "SIGTERM"
    assert isinstance(stop["uptime_s"], float) and isinstance(events[0]["pid"], int)


def test_a_port_in_use_is_one_stop_line_and_exit_1(tmp_path: Path) -> None:
    (tmp_path / "fleet.yaml").write_text("apps: []\n")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = subprocess.run(
            [
                sys.executable, "-m", "fleet.cli.main", "run",
                "--config", str(tmp_path / "fleet.yaml"), "--clusters", str(tmp_path / "c"),
                "--state-dir", str(tmp_path / "state"), "--listen", f"127.0.0.1:{port}",
            ],
            env=dict(os.environ, FLEET_CACHE_DIR=str(tmp_path / "cache")),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""
    stop = _logfmt(done.stderr.splitlines()[-1])
    assert stop["event"] == "hub_stop" and stop["reason"] == "error"
    assert f"cannot listen on 127.0.0.1:{port}" in stop["error"]


def test_the_listening_line_ends_with_the_port(tmp_path: Path) -> None:
    """Scripts (and older tests) find "listening on http://" and read the port at the end."""
    lines = _run(tmp_path, level="warning", fmt="logfmt")
    (line,) = [line for line in lines if "listening on http://" in line]
    port = int(line.rsplit(":", 1)[1])
    assert line.endswith(f"url=http://127.0.0.1:{port}") and port > 0
