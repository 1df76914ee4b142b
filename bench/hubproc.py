"""The hub under test, as ``fleet run`` in a process of its own.

Why a subprocess and not ``Hub`` in the bench's event loop: the bench's watcher, floor loop and
git server would otherwise share the hub's loop and core, so their work would show up as hub
latency, and psutil could not tell the hub's CPU seconds and resident memory from the bench's.
In its own process, the hub's figures are its own: CPU is user + system of the process and of
the children it reaped (git, kustomize), RSS is the process's resident set.

:class:`HubProcess` writes nothing but the command line and the environment (the webhook secret
goes through ``FLEET_GITHUB_SECRET``, never argv), waits for the "listening" line, and offers the
webhook POST and a parsed ``/metrics``; it returns once the hub has started too (it listens first:
``/readyz`` says ``reading the config``, then ``starting``, until then), so a caller's first
question meets the config, and a hub that refuses to start (a bad option it finds once it listens)
is an error of :meth:`HubProcess.start`. :meth:`HubProcess.sampling` runs py-spy (when installed)
on the hub for a stretch of a bench, for where its CPU goes: collapsed stacks, one line per stack.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import aiohttp
import psutil
from prometheus_client.parser import text_string_to_metric_families

from fleet.hub.hub import READING_CONFIG, STARTING

__all__ = ["SECRET", "HubProcess"]

SECRET = "bench-webhook-secret"  # a throwaway secret for a hub on 127.0.0.1
_LISTENING = re.compile(r"listening on http://127\.0\.0\.1:(\d+)")


class HubProcess:
    """``fleet run`` on 127.0.0.1 with the bench's directories and intervals."""

    def __init__(
        self,
        root: Path,
        *,
        poll_interval: float,
        resync_interval: float,
        workers: int = 32,
        log_level: str = "WARNING",
        profile: Path | None = None,
        start_timeout: float = 60.0,
        extra_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.root = root
        self.config = root / "fleet.yaml"
        self.clusters = root / "clusters"
        self.log = root / "hub.log"
        self.poll_interval = poll_interval
        self.resync_interval = resync_interval
        self.workers = workers
        self.log_level = log_level
        self.profile = profile  # cProfile output of the whole hub run, written on SIGTERM
        self.port = 0
        self.start_timeout = start_timeout
        self.extra_args = tuple(extra_args)  # more `fleet run` options (tests of faults)
        self.env = dict(env or {})  # more environment (credentials, secrets under test)
        self.listening_s = 0.0  # process start to "listening" (every cluster entry connected)
        self._popen: subprocess.Popen[bytes] | None = None
        self.proc: psutil.Process | None = None

    def start(self) -> int:
        self.clusters.mkdir(parents=True, exist_ok=True)
        fleet = Path(sys.executable).with_name("fleet")
        profiler = (
            []
            if self.profile is None
            else [sys.executable, "-m", "cProfile", "-o", str(self.profile)]
        )
        argv = [
            *profiler, str(fleet), "run",
            "--config", str(self.config), "--clusters", str(self.clusters),
            "--state-dir", str(self.root / "state"), "--listen", "127.0.0.1:0",
            "--poll-interval", str(self.poll_interval),
            "--resync-interval", str(self.resync_interval),
            "--workers", str(self.workers), "--log-level", self.log_level,
            *self.extra_args,
        ]  # fmt: skip
        env = dict(os.environ, FLEET_GITHUB_SECRET=SECRET, FLEET_CACHE_DIR=str(self.root / "cache"))
        env.update(self.env)
        with self.log.open("wb") as log:
            self._popen = subprocess.Popen(argv, env=env, stdout=log, stderr=log)
        self.proc = psutil.Process(self._popen.pid)
        started = time.monotonic()
        deadline = started + self.start_timeout
        while time.monotonic() < deadline:
            found = _LISTENING.search(self.log.read_text(errors="replace"))
            if found:
                self.port = int(found.group(1))
                self.listening_s = time.monotonic() - started
                self._wait_started(deadline)
                return self.port
            if self._popen.poll() is not None:
                raise RuntimeError(f"fleet run exited: see {self.log}")
            time.sleep(0.1)
        self.stop()  # never leave a hub behind
        raise TimeoutError(f"fleet run did not listen in {self.start_timeout}s: see {self.log}")

    def _wait_started(self, deadline: float) -> None:
        url = f"http://127.0.0.1:{self.port}/readyz"
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(url, timeout=5):
                    return  # 200: ready
            except urllib.error.HTTPError as exc:
                if exc.read().decode().strip() not in (READING_CONFIG, STARTING):
                    return  # started, not ready: a config error it shows
            except OSError:
                pass
            if self._popen is not None and self._popen.poll() is not None:
                raise RuntimeError(f"fleet run exited: see {self.log}")
            time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"fleet run did not start in {self.start_timeout}s: see {self.log}")

    def alive(self) -> bool:
        """The process is still running."""
        return self._popen is not None and self._popen.poll() is None

    def stop(self) -> None:
        if self._popen is None or self._popen.poll() is not None:
            return
        self._popen.send_signal(signal.SIGTERM)
        try:
            self._popen.wait(timeout=40)
        except subprocess.TimeoutExpired:
            self._popen.kill()
            self._popen.wait()

    def __enter__(self) -> HubProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- measurements ---------------------------------------------------------------------------

    def cpu_seconds(self) -> float:
        assert self.proc is not None
        t = self.proc.cpu_times()
        return t.user + t.system + t.children_user + t.children_system

    def rss_mib(self) -> float:
        assert self.proc is not None
        return self.proc.memory_info().rss / 2**20

    def suspend(self) -> None:
        assert self.proc is not None
        self.proc.suspend()

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.resume()

    @contextmanager
    def sampling(self, out: Path, *, rate: int = 20) -> Iterator[None]:
        """py-spy samples the hub while held, `rate` times a second, without pausing it;
        the collapsed stacks go to `out` (``py-spy record --format raw``)."""
        assert self.proc is not None
        spy = Path(sys.executable).with_name("py-spy")
        argv = [
            str(spy), "record", "--pid", str(self.proc.pid), "--rate", str(rate),
            "--nonblocking", "--format", "raw", "--output", str(out),
        ]  # fmt: skip
        with (out.with_suffix(".log")).open("wb") as log:
            sampler = subprocess.Popen(argv, stdout=log, stderr=log)
        try:
            yield
        finally:
            sampler.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
            try:
                sampler.wait(timeout=60)
            except subprocess.TimeoutExpired:
                sampler.kill()
                sampler.wait()

    async def webhook(self, repo_url: str) -> int:
        body = json.dumps({"ref": "refs/heads/main", "repository": {"clone_url": repo_url}})
        signature = "sha256=" + hmac.new(SECRET.encode(), body.encode(), hashlib.sha256).hexdigest()
        headers = {"X-GitHub-Event": "push", "X-Hub-Signature-256": signature}
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                f"http://127.0.0.1:{self.port}/webhooks/github", data=body, headers=headers
            ) as response,
        ):
            return response.status

    async def metrics(self) -> Counter[str]:
        """The hub's own counters, flattened to ``name{label=value,...}`` -> value."""
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{self.port}/metrics") as response,
        ):
            text = await response.text()
        out: Counter[str] = Counter()
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
                out[f"{sample.name}{{{labels}}}"] += sample.value  # type: ignore[assignment]
        return out


def metric_sum(metrics: Counter[str], prefix: str, **labels: str) -> float:
    """The sum of the series named `prefix` whose labels include `labels`."""
    total = 0.0
    for key, value in metrics.items():
        name, _, rest = key.partition("{")
        if name != prefix:
            continue
        have = dict(item.split("=", 1) for item in rest.rstrip("}").split(",") if item)
        if all(have.get(k) == v for k, v in labels.items()):
            total += value
    return total
