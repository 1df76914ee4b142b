"""The floor per cluster entry: the least any tool can write when a commit reaches many entries.

:mod:`bench.many_clusters` measures the hub with many entries sharing a few apiservers; this is
the same commit without the hub. Each entry's changed object (its ``settings`` ConfigMap, in a
namespace of its own, ``f-<entry>``) is applied by one server-side apply, and with ``--record``
followed by a second apply of a small record of it in the same namespace (what fleet's inventory
write costs the apiservers), as many entries at once as the hub has workers, over one long-lived
client per apiserver (:func:`fleet.apply.apply_objects`, the client fleet uses). Nothing is
fetched, rendered, planned or read: whatever fleet takes beyond this is the hub's own cost.

It runs as a process of its own, so the bench's watcher (which stamps convergence) never waits
for it and it never waits for the watcher, as the hub runs apart. The bench starts it, it
connects and prints ``ready``; the bench writes ``go`` and starts its clock; the floor writes,
prints the number of failed writes as JSON and exits::

    python -m bench.entry_floor --kubeconfig many-1=/path/kubeconfig ... \\
        --slots slots.json --value v7 [--record] [--prepare]

``--prepare`` creates each namespace with its ``settings`` and record (not timed).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio

from bench.floor import Clients, Target
from fleet import apply
from fleet.types import ObjectKey

__all__ = ["EntryFloor", "main"]

Slot = tuple[str, str]  # (apiserver name, namespace)


def _settings(namespace: str, value: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "settings", "namespace": namespace},
        "data": {"value": value},
    }


def _record(namespace: str, value: str) -> dict[str, Any]:
    """A record the size of fleet's inventory of one tenant: three objects and a revision."""
    rows = [
        ["v1", kind, namespace, name]
        for kind, name in (("Namespace", namespace), ("ConfigMap", "settings"), ("Service", "web"))
    ]
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "floor-record", "namespace": namespace},
        "data": {"objects": json.dumps(rows), "revision": value},
    }


class EntryFloor(Clients):
    """Per-entry writes over one long-lived client per apiserver (`kubeconfigs`: name -> path)."""

    def __init__(self, kubeconfigs: dict[str, Path], *, concurrency: int = 32) -> None:
        super().__init__(kubeconfigs)
        self.concurrency = concurrency

    async def prepare(self, slots: list[Slot], value: str) -> int:
        """Each slot's namespace, its ``settings`` at `value` and its record."""

        def objects(namespace: str) -> list[dict[str, Any]]:
            ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
            return [ns, _settings(namespace, value), _record(namespace, value)]

        return await self._each(slots, objects)

    async def apply(self, slots: list[Slot], value: str, *, record: bool) -> int:
        """Every slot's ``settings`` to `value`, then with `record` its record: failed writes."""

        def objects(namespace: str) -> list[dict[str, Any]]:
            first = [_settings(namespace, value)]
            return [*first, _record(namespace, value)] if record else first

        return await self._each(slots, objects)

    async def _each(self, slots: list[Slot], objects: Callable[[str], list[dict[str, Any]]]) -> int:
        failed = 0
        gate = anyio.Semaphore(self.concurrency)

        async def one(server: str, namespace: str) -> None:
            nonlocal failed
            async with gate:
                for manifest in objects(namespace):  # one after the other, as a sync writes
                    key = ObjectKey.of(manifest)
                    target = Target(key, str(manifest["apiVersion"]), manifest)
                    changes = await apply.apply_objects(
                        self.clusters[server], [target], options=self.options
                    )
                    failed += sum(1 for c in changes if c.outcome is apply.Outcome.FAILED)

        async with anyio.create_task_group() as group:
            for server, namespace in slots:
                group.start_soon(one, server, namespace)
        return failed


async def _run(args: argparse.Namespace, slots: list[Slot]) -> int:
    kubeconfigs = dict(item.split("=", 1) for item in args.kubeconfig)
    async with EntryFloor(
        {k: Path(v) for k, v in kubeconfigs.items()}, concurrency=args.concurrency
    ) as floor:
        print("ready", flush=True)
        await anyio.to_thread.run_sync(sys.stdin.readline)
        if args.prepare:
            failed = await floor.prepare(slots, args.value)
        else:
            failed = await floor.apply(slots, args.value, record=args.record)
    print(json.dumps({"failed": failed}), flush=True)
    return failed


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kubeconfig", action="append", default=[], metavar="NAME=PATH")
    p.add_argument("--slots", required=True, help="a JSON list of [apiserver, namespace]")
    p.add_argument("--value", required=True)
    p.add_argument("--record", action="store_true")
    p.add_argument("--prepare", action="store_true")
    p.add_argument("--concurrency", type=int, default=32)
    args = p.parse_args(argv)
    slots = [(str(s), str(n)) for s, n in json.loads(Path(args.slots).read_text())]
    return 1 if anyio.run(_run, args, slots, backend="asyncio") else 0


if __name__ == "__main__":
    sys.exit(main())
