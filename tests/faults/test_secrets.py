"""Secrets never leak: plant each kind, provoke failures around it, hunt for it everywhere.

The hub runs as ``fleet run`` (a subprocess, :class:`~tests.faults.faultkit.FaultRig`) at debug
level against kit clusters and git over HTTP behind basic auth. Planted, each a random value:

- a **git token**: the HTTP remote's password, given to the hub in the credentials file;
- a **wrong password**: a credentials entry for one repository that the server refuses;
- a **URL password**: an app whose repoURL holds ``user:pass@`` (its own test: the hub must stay
  up, that app show a clear error, the other app converge);
- a **client key**: the kit kubeconfig's ``client-key-data``, as base64 and as the decoded PEM;
- a **bearer token**: a kubeconfig whose user is a token the cluster refuses;
- an **SSH key**: a deploy key in the credentials file for an ssh:// repository nobody answers;
- the **webhook secret** (``FLEET_GITHUB_SECRET``), with one good and one forged push.

Each secret is first shown to be really in what was planted (so a hunt can fail), then looked
for in: the hub's log, ``/api/status``, ``/metrics``, the page ``/``, the state directory (the
history database and its journal), the git mirrors' config files, the CLI's output (``fleet
status``, ``fleet history``), and the argv of every child process of the hub, sampled from
``/proc`` (psutil) while it runs git; the webhook secret, the bearer token and the keys also in
the git children's environments (git is given only its own credential).
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from fleet.controlplane import RunningCluster
from tests.faults.faultkit import FaultRig, fault_rig
from tests.hub.hubkit import configmap, push_webhook, until, value_on

pytestmark = pytest.mark.anyio

GIT_USER = "fleet-bot"


def _secret(tag: str) -> str:
    return f"{tag}-{secrets.token_hex(12)}"


@dataclass
class ChildSampler:
    """Samples the argv (and, for git, the environment) of every descendant of `pid`."""

    pid: int
    argv: set[str] = field(default_factory=set)
    git_env: set[str] = field(default_factory=set)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        parent = psutil.Process(self.pid)
        while not self._stop.wait(0.01):
            try:
                children = parent.children(recursive=True)
            except psutil.Error:
                return
            for child in children:
                try:
                    argv = child.cmdline()
                    self.argv.add("\0".join(argv))
                    if argv and Path(argv[0]).name.startswith("git"):
                        self.git_env.add("\0".join(f"{k}={v}" for k, v in child.environ().items()))
                except psutil.Error:
                    continue  # it ended between the listing and the read

    def saw_git(self, *words: str) -> bool:
        return any(all(w in a.split("\0") for w in ("git", *words)) for a in self.argv)


def _deploy_key(path: Path) -> str:
    key = ed25519.Ed25519PrivateKey.generate()
    text = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    ).decode()
    path.write_text(text)
    path.chmod(0o600)
    return text


def _token_kubeconfig(source: Path, target: Path, token: str) -> None:
    """`source`'s cluster and context, with a user that is only a bearer `token`."""
    doc = yaml.safe_load(source.read_text())
    doc["users"] = [{"name": doc["users"][0]["name"], "user": {"token": token}}]
    target.write_text(yaml.safe_dump(doc))


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _app(name: str, url: str, namespace: str, clusters: list[str] | None = None) -> str:
    where = f", clusters: {{names: {json.dumps(clusters)}}}" if clusters else ""
    return (
        f"  - name: {name}\n"
        f"    source: {{repoURL: '{url}', targetRevision: main, path: app}}\n"
        f"    destination: {{namespace: {namespace}{where}}}\n"
        f"    syncPolicy: {{prune: true, createNamespace: true}}\n"
    )


def _pem_lines(pem: str) -> list[str]:
    """The body lines of a PEM text: each one alone is a piece of the key."""
    return [line for line in pem.splitlines() if line and not line.startswith("-----")]


def _fleet(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fleet.cli.main", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


class Places:
    """Every place a secret could end up, read as text."""

    def __init__(self) -> None:
        self.texts: dict[str, str] = {}

    def add(self, name: str, text: str) -> None:
        self.texts[name] = self.texts.get(name, "") + "\n" + text

    def add_files(self, name: str, paths: Iterator[Path]) -> None:
        for path in paths:
            if path.is_file():
                self.add(f"{name}:{path.name}", path.read_bytes().decode("latin-1"))

    def holding(self, secret: str) -> list[str]:
        return sorted(name for name, text in self.texts.items() if secret in text)


async def _read_hub(rig: FaultRig, places: Places) -> dict[str, Any]:
    status = await rig.status()
    places.add("api_status", json.dumps(status))
    for path, name in (("/metrics", "metrics"), ("/", "page")):
        code, body = await rig.get(path)
        assert code == 200, (path, code)
        places.add(name, body if isinstance(body, str) else json.dumps(body))
    return status


def _errors_about(status: dict[str, Any], name: str) -> list[str]:
    """Error texts of the status document that concern app or cluster `name`."""
    cells = [c for c in status.get("apps", []) if name in (c.get("app"), c.get("cluster"))]
    found = [str(c["error"]) for c in cells if c.get("error")]
    found += [
        str(c.get("error") or c.get("state"))
        for c in status.get("clusters", [])
        if c.get("name") == name and c.get("state") != "ready"
    ]
    if re.search(rf"\b{re.escape(name)}\b", str(status.get("config_error", ""))):
        found.append(str(status["config_error"]))
    return found


async def test_planted_secrets_never_leak(
    kit_clusters: list[RunningCluster], tmp_path: Path
) -> None:
    git_token, wrong_password = _secret("gittoken"), _secret("wrongpw")
    bearer, webhook_secret = _secret("bearer"), _secret("hooksecret")
    good_cluster, other = kit_clusters[0], kit_clusters[1]
    ns = "secrets-good"
    with fault_rig(tmp_path, auth=(GIT_USER, git_token)) as rig:
        good, locked = rig.remote("good"), rig.remote("locked")
        good.commit({"app/cm.yaml": configmap(ns, "v1")})
        locked.commit({"app/cm.yaml": configmap("secrets-locked", "v1")})
        key_file = rig.root / "deploy_key"
        ssh_key = _deploy_key(key_file)
        (rig.root / "known_hosts").write_text("")
        ssh_port = _closed_port()  # nobody answers there
        ssh_url = f"ssh://git@127.0.0.1:{ssh_port}/nothing.git"
        credentials = rig.root / "credentials.yaml"
        credentials.write_text(
            yaml.safe_dump(
                {
                    "credentials": [
                        {"url": rig.git.url(""), "username": GIT_USER,
                         "password": git_token},
                        {"url": rig.url("locked"), "username": GIT_USER,
                         "password": wrong_password},
                        {"url": f"ssh://git@127.0.0.1:{ssh_port}/", "sshKey": str(key_file),
                         "knownHosts": str(rig.root / "known_hosts")},
                    ]
                }
            )
        )  # fmt: skip
        rig.write_config(
            "apps:\n"
            + _app("good", rig.url("good"), ns, [good_cluster.name])
            + _app("locked", rig.url("locked"), "secrets-locked", [good_cluster.name])
            + _app("deploykey", ssh_url, "secrets-ssh", [good_cluster.name])
            + _app("tokened", rig.url("good"), "secrets-tokened", ["refused"])
        )
        dropped = rig.drop(good_cluster)
        refused = rig.clusters / "refused.yaml"
        _token_kubeconfig(other.kubeconfig, refused, bearer)

        # every secret is really where it was planted, in the form the hub reads
        client_key_b64 = yaml.safe_load(dropped.read_text())["users"][0]["user"]["client-key-data"]
        client_key_pem = base64.b64decode(client_key_b64).decode()
        assert "PRIVATE KEY-----" in client_key_pem and client_key_b64 in dropped.read_text()
        assert bearer in refused.read_text() and "client-key-data" not in refused.read_text()
        assert git_token in credentials.read_text() and wrong_password in credentials.read_text()
        assert ssh_key in key_file.read_text() and len(_pem_lines(ssh_key)) >= 3
        hunted = {
            "git token": [git_token],
            "wrong password": [wrong_password],
            "client key (base64)": [client_key_b64, client_key_b64[40:80]],
            "client key (PEM)": _pem_lines(client_key_pem),
            "bearer token": [bearer],
            "ssh key": _pem_lines(ssh_key),
            "webhook secret": [webhook_secret],
        }

        # Until the poller is supervised (issue 11 item 1), a refused credential seen by the
        # *poller* ends the hub: only webhooks and reconciles list here. With it, poll each 1 s.
        hub = rig.hub(
            poll_interval=1.0,
            log_level="DEBUG",
            extra_args=["--credentials", str(credentials)],
            env={"FLEET_GITHUB_SECRET": webhook_secret},
        )
        assert hub.proc is not None
        sampler = ChildSampler(hub.proc.pid)
        sampler.start()
        try:

            async def converged() -> bool:
                return await value_on(good_cluster, ns) == "v1"

            await until(converged, limit=120)  # the git token works

            async def failures_shown() -> bool:
                status = await rig.status()
                return all(_errors_about(status, n) for n in ("locked", "deploykey", "refused"))

            await until(failures_shown, limit=120)

            # a forged push and a real one, signed with the planted secret
            forged = await push_webhook(hub.port, rig.url("good"), secret="not-the-secret")
            assert forged == 401
            good.commit({"app/cm.yaml": configmap(ns, "v2")})
            assert await push_webhook(hub.port, rig.url("good"), secret=webhook_secret) == 200

            async def moved() -> bool:
                return await value_on(good_cluster, ns) == "v2"

            await until(moved, limit=60)
            await until(lambda: sampler.saw_git("ls-remote") and sampler.saw_git("fetch"))

            places = Places()
            status = await _read_hub(rig, places)
            for name in ("locked", "deploykey", "refused"):
                assert _errors_about(status, name), (name, status)
            assert "access refused" in " ".join(_errors_about(status, "locked"))
            assert hub.alive()
            cli = _fleet("status", "--url", f"http://127.0.0.1:{hub.port}", cwd=rig.root)
            assert cli.returncode == 1, (cli.stdout, cli.stderr)  # not all green
            places.add("fleet status", cli.stdout + cli.stderr)
        finally:
            hub.stop()
            sampler.stop()
        assert not hub.alive()
        history = _fleet(
            "history", "--state-dir", str(rig.root / "state"), "--cache-dir",
            str(rig.root / "cache"), "--json", cwd=rig.root,
        )  # fmt: skip
        places.add("fleet history", history.stdout + history.stderr)
        log = rig.log_text()
        places.add("hub log", log)
        places.add("child argv", "\n".join(sampler.argv))
        places.add_files("state dir", (rig.root / "state").rglob("*"))
        places.add_files("mirror config", (rig.root / "cache").rglob("config"))
        assert "event=hub_start" in log and "event=hub_stop reason=SIGTERM" in log
        assert "history.sqlite" in " ".join(places.texts), places.texts.keys()
        assert any("access refused" in line for line in log.splitlines())  # failures were logged

        leaks = {
            what: {piece[:12]: places.holding(piece) for piece in pieces if places.holding(piece)}
            for what, pieces in hunted.items()
        }
        assert not any(leaks.values()), leaks
        in_git_env = "\n".join(sampler.git_env)
        assert sampler.git_env, "no git child was seen"
        for what in ("bearer token", "client key (PEM)", "ssh key", "webhook secret"):
            assert not [p for p in hunted[what] if p in in_git_env], what


async def test_a_password_in_a_repo_url_is_refused_and_never_shown(
    kit_clusters: list[RunningCluster], tmp_path: Path
) -> None:
    git_token, url_password = _secret("gittoken"), _secret("urlpw")
    cluster = kit_clusters[0]
    ns = "secrets-url-good"
    with fault_rig(tmp_path, auth=(GIT_USER, git_token)) as rig:
        good = rig.remote("good")
        good.commit({"app/cm.yaml": configmap(ns, "v1")})
        credentials = rig.root / "credentials.yaml"
        credentials.write_text(
            yaml.safe_dump(
                {
                    "credentials": [
                        {"url": rig.git.url(""), "username": GIT_USER, "password": git_token}
                    ]
                }
            )
        )
        leaky_url = rig.url("good").replace("http://", f"http://{GIT_USER}:{url_password}@")
        leaky_token_url = rig.url("good").replace("http://", f"http://{url_password}-t@")
        rig.write_config(
            "apps:\n"
            + _app("good", rig.url("good"), ns, [cluster.name])
            + _app("leaky", leaky_url, "secrets-leaky", [cluster.name])
            + _app("leakytoken", leaky_token_url, "secrets-leaky2", [cluster.name])
        )
        assert url_password in rig.config.read_text()
        rig.drop(cluster)
        hub = rig.hub(log_level="DEBUG", extra_args=["--credentials", str(credentials)])
        assert hub.proc is not None
        sampler = ChildSampler(hub.proc.pid)
        sampler.start()
        places = Places()
        try:

            async def settled() -> bool:  # converged and polled twice, or dead
                if not hub.alive():
                    return True
                return await value_on(cluster, ns) == "v1" and _polled_twice(rig)

            await until(settled, limit=120)
            alive = hub.alive()
            status = await _read_hub(rig, places) if alive else {}
        finally:
            hub.stop()
            sampler.stop()
        # fleet's own parts: the log's scrubbing, git's argv, the mirrors never hold it
        mine = Places()
        mine.add("hub log", rig.log_text())
        mine.add("child argv", "\n".join(sampler.argv))
        mine.add_files("mirror config", (rig.root / "cache").rglob("config"))
        assert sampler.saw_git() and "event=hub_start" in rig.log_text()
        assert not mine.holding(url_password), mine.holding(url_password)
        # the hub's part: refused at config load, so never stored, shown, or fatal
        places.add_files("state dir", (rig.root / "state").rglob("*"))
        waits = []
        if not alive:
            waits.append("the hub died")
        elif await value_on(cluster, ns) != "v1":
            waits.append("the other app did not converge")
        errors = _errors_about(status, "leaky") + _errors_about(status, "leakytoken")
        shown = " ".join(errors)
        if not ("credentials in a URL are refused" in shown and "--credentials FILE" in shown):
            waits.append(f"no clear error for the apps: {errors}")
        if places.holding(url_password):
            waits.append(f"the password is in {places.holding(url_password)}")
        if waits:
            pytest.xfail(f"waits for the hub's config check: {'; '.join(waits)}")


def _polled_twice(rig: FaultRig) -> bool:
    return rig.log_text().count("event=ls_remote") >= 2
