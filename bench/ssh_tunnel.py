"""Micro-benchmark: the latency an SSH tunnel adds to API requests, against direct access.

Starts one local cluster from the kit and an asyncssh jump host in this process (the test server
of ``tests/transport/sshd.py``), opens two kubernetes-asyncio clients on the same apiserver, one
direct and one through :class:`fleet.transport.Tunnels`, and times ``--requests`` GETs of one
ConfigMap on each, interleaved (direct, tunnel, direct, ...) so that noise hits both alike. Prints
the medians, p90s and their ratio, and writes ``bench/results/ssh_tunnel.json``.

Run: ``python -m bench.ssh_tunnel [--requests 200]``. The jump host shares this process's event
loop and core, so the figure includes the server's SSH work too (a pessimistic bound for a real
bastion, which has its own CPU, and an optimistic one for a real network, which adds RTT).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import anyio
from kubernetes_asyncio import client as k8s

from fleet.config import clusters
from fleet.controlplane import LocalProvider
from fleet.transport import Tunnels, tunneled_document
from tests.transport.edge import FAST, HIDDEN, client, edge_kubeconfig, put_config_map
from tests.transport.sshd import SshServer, User, new_key, write_private_key


async def timed_get(core: k8s.CoreV1Api) -> float:
    """Milliseconds for one GET of the bench ConfigMap."""
    started = time.perf_counter()
    await core.read_namespaced_config_map("bench", "default", _request_timeout=10)
    return (time.perf_counter() - started) * 1000


async def run(root: Path, *, requests: int, warmup: int) -> dict[str, float]:
    with LocalProvider(kubeconfig_dir=root / "kit", progress=lambda _: None) as kit:
        (cluster,) = kit.up(["bench-1"])
        key = new_key()
        user = User(keys=(key.convert_to_public(),), forward=True)
        async with SshServer(users={"fleet": user}, hosts={HIDDEN: "127.0.0.1"}) as bastion:
            known = root / "known_hosts"
            known.write_text(bastion.known_hosts_line())
            edge = edge_kubeconfig(
                cluster,
                root,
                name="edge",
                jumps=[(bastion.port, "fleet")],
                identity=write_private_key(key, root / "edge_key"),
                known_hosts=known,
            )
            direct_file = clusters.read(cluster.kubeconfig)
            async with Tunnels(FAST) as tunnels:
                endpoint = await tunnels.endpoint(edge)
                await tunnels.wait_ready("edge", time_limit=30)
                async with (
                    client(dict(direct_file.document)) as direct,
                    client(tunneled_document(edge, endpoint)) as tunneled,
                ):
                    await put_config_map(direct, "bench", {"k": "v" * 512})
                    times: dict[str, list[float]] = {"direct": [], "tunnel": []}
                    for index in range(warmup + requests):
                        for name, core in (("direct", direct), ("tunnel", tunneled)):
                            elapsed = await timed_get(core)
                            if index >= warmup:
                                times[name].append(elapsed)
    return summarize(times)


def summarize(times: dict[str, list[float]]) -> dict[str, float]:
    result: dict[str, float] = {"requests": float(len(times["direct"]))}
    for name, samples in times.items():
        result[f"{name}_median_ms"] = statistics.median(samples)
        result[f"{name}_p90_ms"] = statistics.quantiles(samples, n=10)[-1]
    result["added_median_ms"] = result["tunnel_median_ms"] - result["direct_median_ms"]
    result["ratio"] = result["tunnel_median_ms"] / result["direct_median_ms"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--out", type=Path, default=Path("bench/results/ssh_tunnel.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fleet-bench-ssh-") as tmp:
        result = anyio.run(
            lambda: run(Path(tmp), requests=args.requests, warmup=args.warmup),
            backend="asyncio",
        )
    print(f"{int(result['requests'])} GETs of one ConfigMap each way, interleaved")
    print("| path | median ms | p90 ms |")
    print("|---|---:|---:|")
    for name in ("direct", "tunnel"):
        print(f"| {name} | {result[f'{name}_median_ms']:.2f} | {result[f'{name}_p90_ms']:.2f} |")
    print(f"added latency (median): {result['added_median_ms']:.2f} ms")
    print(f"tunnel / direct (median): {result['ratio']:.2f}x")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
