"""``fleet run`` imports only what the hub needs before it listens (issue 16: listening within 2 s
of the start whatever the number of entries; imports were most of that time).

kubernetes-asyncio's client package imports every API and model it has (about a second of CPU
on a small machine): the hub imports it once a cluster connects, after it listens; asyncssh (a
fifth of a second) once a cluster behind a bastion joins. The other
commands' modules are not imported for ``fleet run`` at all. Each check runs in a fresh
interpreter, since this test process has imported everything already.
"""

from __future__ import annotations

import json
import subprocess
import sys

_PROBE = """
import json, sys
from fleet.cli import main
try:
    main.main(["run", "--help"])
except SystemExit:
    pass
import fleet.hub.hub  # what `fleet run` runs
print(json.dumps(sorted(sys.modules)))
"""


def _loaded(probe: str) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    return set(json.loads(done.stdout.splitlines()[-1]))


def test_the_hub_listens_before_the_kubernetes_client_is_imported() -> None:
    loaded = _loaded(_PROBE)
    assert "fleet.hub.hub" in loaded and "fleet.apply.kube" in loaded
    assert not {m for m in loaded if m.startswith("kubernetes_asyncio")}
    assert "asyncssh" not in loaded  # the SSH links' library: once a tunnelled cluster joins
    assert "fleet.apply.sharedclient" not in loaded
    others = {"fleet.cli.demo", "fleet.cli.oneshot", "fleet.cli.control", "fleet.gitops.cli"}
    assert not others & loaded


def test_a_client_made_imports_it() -> None:
    """The deferred import is where the client is made (not a module nobody imports)."""
    probe = (
        "import asyncio, json, sys\n"
        "from kubernetes_asyncio.client import Configuration\n"
        "from fleet.apply.sessions import Sessions\n"
        "async def made():\n"
        "    async with Sessions().client(Configuration(host='https://127.0.0.1:6443')):\n"
        "        pass\n"
        "asyncio.run(made())\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    assert "fleet.apply.sharedclient" in _loaded(probe)
