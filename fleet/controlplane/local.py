"""Local control planes: real etcd, kube-apiserver, controller-manager, scheduler and kwok.

Startup runs in phases, each across all clusters at once: etcd; every apiserver, then wait for all
their ``/readyz``; the fake Node; then every controller-manager, scheduler and kwok, and wait for
each Node to be Ready. Processes are started from the calling (main) thread only, since an attached
child is tied to the thread that forked it; the waiting is one polling loop over all clusters.

One etcd serves every cluster of a kit by default, each apiserver under its own ``--etcd-prefix``:
measured on this 2-core machine it saves one process and ~25 MiB per cluster and starts faster
(``bench/kit_startup.py``); ``etcd="per-cluster"`` gives each its own for isolation.

Failure at any step stops everything already started and raises :class:`KitError` with one line
naming the process, the cause and its log file; the logs of a failed start are kept, those of a
clean run are removed with it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from fleet.controlplane import binaries, flags, kubeconfig, pki, processes, runstate
from fleet.controlplane.adminapi import AdminApi, ApiCallError
from fleet.controlplane.errors import KitError
from fleet.settings import default_cache_dir

__all__ = ["EtcdMode", "LocalProvider", "RunningCluster"]

EtcdMode = Literal["shared", "per-cluster"]
Progress = binaries.Progress
FAKE_NODE = "kwok-node-0"


@dataclass(frozen=True)
class RunningCluster:
    """A cluster that answers: its name, URL, and the kubeconfig that reaches it."""

    name: str
    server: str
    port: int
    kubeconfig: Path
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass
class _Cluster:
    name: str
    port: int
    files: flags.ClusterFiles
    api: AdminApi
    labels: dict[str, str]
    document: dict[str, Any]
    procs: list[processes.Proc] = field(default_factory=list)
    apiserver_argv: list[str] = field(default_factory=list)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _check_port_free(port: int, purpose: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers do
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            raise KitError(
                f"port 127.0.0.1:{port} for {purpose} is in use ({exc.strerror})"
            ) from exc


class LocalProvider:
    """Start and stop a kit of local clusters; also a context manager (``with ... as kit``)."""

    name = "local"

    def __init__(
        self,
        *,
        kubeconfig_dir: Path,
        cache_dir: Path | None = None,
        run_root: Path | None = None,
        etcd: EtcdMode = "shared",
        attached: bool = True,
        base_port: int | None = None,
        apiserver_args: Sequence[str] = (),
        progress: Progress = binaries.stderr_progress,
    ) -> None:
        self.kubeconfig_dir = kubeconfig_dir
        self.cache_dir = cache_dir or default_cache_dir()
        self.run_root = run_root or runstate.default_run_root()
        self.etcd_mode: EtcdMode = etcd
        self.attached = attached
        self.base_port = base_port
        self.apiserver_args = list(apiserver_args)
        self.progress = progress
        self.kit_id = f"kit-{uuid.uuid4().hex[:10]}"
        self.run_dir = self.run_root / self.kit_id
        self.log_dir = self.cache_dir / "controlplane" / "logs" / self.kit_id
        self._etcd: list[processes.Proc] = []
        self._etcd_urls: list[str] = []
        self._clusters: list[_Cluster] = []
        self._state: runstate.KitState | None = None

    # -- public -------------------------------------------------------------------------------

    def up(
        self,
        names: Sequence[str],
        *,
        labels: Mapping[str, Mapping[str, str]] | None = None,
        timeout: float = 180.0,
    ) -> list[RunningCluster]:
        """Start one cluster per name, wait until each serves and schedules, write kubeconfigs."""
        if len(set(names)) != len(names) or not names:
            raise KitError(f"cluster names must be distinct and non-empty: {list(names)}")
        bins = binaries.ensure_all(cache_dir=self.cache_dir, progress=self.progress)
        runstate.sweep_stale(self.run_root)
        self.run_dir.mkdir(parents=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._state = runstate.KitState(
            kit_id=self.kit_id,
            provider=self.name,
            attached=self.attached,
            owner_pid=os.getpid(),
            run_dir=str(self.run_dir),
            log_dir=str(self.log_dir),
            kubeconfig_dir=str(self.kubeconfig_dir.resolve()),  # `down` may run elsewhere
        )
        self._state.save()
        started = time.monotonic()
        try:
            ports = self._ports(len(names))
            self._start_etcd(bins["etcd"], ports, count=len(names))
            for index, name in enumerate(names):
                self._clusters.append(self._prepare(name, ports.apiservers[index], labels))
            self._start_apiservers(bins["kube-apiserver"])
            self._wait(
                {c.name: (c.procs[0], c.api.ready) for c in self._clusters},
                what="ready (/readyz)",
                deadline=started + timeout,
            )
            for cluster in self._clusters:
                cluster.api.create("/api/v1/nodes", flags.fake_node(FAKE_NODE))
            self._start_components(bins)
            self._wait(
                {c.name: (c.procs[-1], self._node_ready_check(c)) for c in self._clusters},
                what="scheduling onto a Ready kwok node",
                deadline=started + timeout,
            )
            running = [self._publish(c) for c in self._clusters]
        except BaseException:
            self.down(keep_logs=True)
            raise
        self.progress(
            f"{len(names)} cluster(s) up in {time.monotonic() - started:.1f} s; "
            f"kubeconfigs in {self.kubeconfig_dir}"
        )
        return running

    def down(self, *, keep_logs: bool = False) -> None:
        """Stop every process (dependants first), remove kubeconfigs and the run directory."""
        order: list[processes.Proc] = []
        for cluster in self._clusters:
            order.extend(reversed(cluster.procs))
        order.extend(self._etcd)
        processes.stop_all(order)
        leftovers = processes.find_marked(self.kit_id)
        if leftovers:
            processes.kill_pids(leftovers)
        if self._state is not None:
            for record in self._state.clusters:
                runstate.remove_kubeconfig(Path(record.kubeconfig), server=record.server)
        shutil.rmtree(self.run_dir, ignore_errors=True)
        if not keep_logs:
            shutil.rmtree(self.log_dir, ignore_errors=True)
        self._clusters, self._etcd, self._state = [], [], None

    def stop_apiserver(self, name: str) -> None:
        """Stop one cluster's apiserver (an outage, for tests); its other processes keep running
        and reconnect when :meth:`start_apiserver` brings it back on the same port."""
        cluster = self._cluster(name)
        processes.stop_all([cluster.procs[0]])

    def start_apiserver(self, name: str, *, timeout: float = 60.0) -> None:
        """Start a stopped apiserver again and wait for its ``/readyz``."""
        cluster = self._cluster(name)
        if cluster.procs[0].exited() is None:
            return
        cluster.procs[0] = self._start(f"{name}/kube-apiserver", cluster.apiserver_argv)
        self._wait(
            {name: (cluster.procs[0], cluster.api.ready)},
            what="ready (/readyz)",
            deadline=time.monotonic() + timeout,
        )

    def _cluster(self, name: str) -> _Cluster:
        for cluster in self._clusters:
            if cluster.name == name:
                return cluster
        raise KitError(f"no cluster {name!r} in kit {self.kit_id}")

    def __enter__(self) -> LocalProvider:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.down(keep_logs=exc is not None)

    # -- phases -------------------------------------------------------------------------------

    @dataclass(frozen=True)
    class _Ports:
        etcd: list[tuple[int, int]]
        apiservers: list[int]

    def _ports(self, count: int) -> LocalProvider._Ports:
        etcd_count = 1 if self.etcd_mode == "shared" else count
        if self.base_port is None:
            pairs = [(_free_port(), _free_port()) for _ in range(etcd_count)]
            return self._Ports(pairs, [_free_port() for _ in range(count)])
        apis = [self.base_port + i for i in range(count)]
        start = self.base_port + count
        pairs = [(start + 2 * i, start + 2 * i + 1) for i in range(etcd_count)]
        for port in apis:
            _check_port_free(port, "a kube-apiserver (--base-port)")
        for client, peer in pairs:
            _check_port_free(client, "etcd (--base-port)")
            _check_port_free(peer, "etcd peers (--base-port)")
        return self._Ports(pairs, apis)

    def _start(self, name: str, argv: list[str]) -> processes.Proc:
        log = self.log_dir / f"{name.replace('/', '-')}.log"
        return processes.start(name, argv, log_path=log, kit_id=self.kit_id, attached=self.attached)

    def _start_etcd(self, binary: Path, ports: LocalProvider._Ports, *, count: int) -> None:
        for index, (client, peer) in enumerate(ports.etcd):
            data = self.run_dir / f"etcd-{index}"
            argv = flags.etcd(binary=binary, data_dir=data, client_port=client, peer_port=peer)
            self._etcd.append(self._start(f"etcd-{index}", argv))
        checks = {
            proc.name: (proc, _etcd_healthy(client))
            for proc, (client, _) in zip(self._etcd, ports.etcd, strict=True)
        }
        self._wait(checks, what="healthy", deadline=time.monotonic() + 60)
        self._etcd_urls = [
            f"http://127.0.0.1:{ports.etcd[0 if len(ports.etcd) == 1 else i][0]}"
            for i in range(count)
        ]

    def _prepare(
        self, name: str, port: int, labels: Mapping[str, Mapping[str, str]] | None
    ) -> _Cluster:
        files = flags.ClusterFiles(self.run_dir / name)
        issued = pki.issue_cluster_pki(name, hosts=["127.0.0.1", "localhost"])
        (files.root / "pki").mkdir(parents=True)
        for path, data in (
            (files.ca, issued.ca.cert_pem),
            (files.serving_cert, issued.serving.cert_pem),
            (files.serving_key, issued.serving.key_pem),
            (files.admin_cert, issued.admin.cert_pem),
            (files.admin_key, issued.admin.key_pem),
            (files.sa_key, issued.service_account_key_pem),
            (files.sa_pub, issued.service_account_pub_pem),
        ):
            path.write_bytes(data)
            path.chmod(0o600)
        cluster_labels = dict((labels or {}).get(name, {}))
        document = kubeconfig.build(
            name=name,
            server=f"https://127.0.0.1:{port}",
            ca_pem=issued.ca.cert_pem,
            client_cert_pem=issued.admin.cert_pem,
            client_key_pem=issued.admin.key_pem,
            labels=cluster_labels,
        )
        kubeconfig.write(files.kubeconfig, document)
        api = AdminApi("127.0.0.1", port, files.ca, files.admin_cert, files.admin_key)
        return _Cluster(
            name=name, port=port, files=files, api=api, labels=cluster_labels, document=document
        )

    def _start_apiservers(self, binary: Path) -> None:
        for index, cluster in enumerate(self._clusters):
            prefix = f"/fleet-kit/{cluster.name}" if self.etcd_mode == "shared" else "/registry"
            argv = (
                flags.apiserver(
                    binary=binary,
                    files=cluster.files,
                    port=cluster.port,
                    etcd_url=self._etcd_urls[index],
                    etcd_prefix=prefix,
                )
                + self.apiserver_args
            )
            cluster.apiserver_argv = argv
            cluster.procs.append(self._start(f"{cluster.name}/kube-apiserver", argv))

    def _start_components(self, bins: Mapping[str, Path]) -> None:
        for cluster in self._clusters:
            for proc_name, argv in (
                (
                    "kube-controller-manager",
                    flags.controller_manager(
                        binary=bins["kube-controller-manager"], files=cluster.files
                    ),
                ),
                (
                    "kube-scheduler",
                    flags.scheduler(binary=bins["kube-scheduler"], files=cluster.files),
                ),
                ("kwok", flags.kwok(binary=bins["kwok"], files=cluster.files)),
            ):
                cluster.procs.append(self._start(f"{cluster.name}/{proc_name}", argv))

    def _node_ready_check(self, cluster: _Cluster) -> Callable[[], bool]:
        def check() -> bool:
            for proc in cluster.procs:
                code = proc.exited()
                if code is not None:
                    raise _exited(proc, code, "scheduling onto a Ready kwok node")
            try:
                node = cluster.api.get_json(f"/api/v1/nodes/{FAKE_NODE}")
                account = cluster.api.get_json("/api/v1/namespaces/default/serviceaccounts/default")
            except ApiCallError:
                return False
            if node is None or account is None:
                return False
            conditions = node.get("status", {}).get("conditions", [])
            taints = [
                t
                for t in node.get("spec", {}).get("taints", [])
                if t.get("effect") in ("NoSchedule", "NoExecute")
            ]
            ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
            return ready and not taints

        return check

    def _publish(self, cluster: _Cluster) -> RunningCluster:
        path = self.kubeconfig_dir / f"{cluster.name}.yaml"
        server = f"https://127.0.0.1:{cluster.port}"
        kubeconfig.write(path, cluster.document)
        assert self._state is not None
        self._state.clusters.append(
            runstate.ClusterRecord(
                name=cluster.name,
                server=server,
                port=cluster.port,
                kubeconfig=str(path),
                labels=cluster.labels,
            )
        )
        self._state.save()
        return RunningCluster(cluster.name, server, cluster.port, path, cluster.labels)

    def _wait(
        self,
        checks: Mapping[str, tuple[processes.Proc, Callable[[], bool]]],
        *,
        what: str,
        deadline: float,
    ) -> None:
        pending = dict(checks)
        while pending:
            for key, (proc, check) in list(pending.items()):
                code = proc.exited()
                if code is not None:
                    raise _exited(proc, code, what)
                if check():
                    del pending[key]
            if pending and time.monotonic() > deadline:
                names = ", ".join(sorted(pending))
                proc = next(iter(pending.values()))[0]
                raise KitError(f"{names} not {what} in time (log: {proc.log_path})")
            if pending:
                time.sleep(0.2)


def _etcd_healthy(port: int) -> Callable[[], bool]:
    def check() -> bool:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1) as s:
            s.sendall(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            return b'"health":"true"' in s.recv(4096)
        return False

    return check


def _exited(proc: processes.Proc, code: int, what: str) -> KitError:
    tail = proc.log_tail(20)
    cause = tail.splitlines()[-1] if tail else "no output"
    if "address already in use" in tail:
        cause = "its port is in use"
    return KitError(
        f"{proc.name} exited with code {code} before {what}: {cause} (log: {proc.log_path})"
    )
