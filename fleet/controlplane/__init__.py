"""The control-plane kit: real Kubernetes clusters on a machine without Docker.

It builds pinned kube-apiserver, kube-controller-manager, kube-scheduler, etcd and kwok binaries
from Go modules (once, cached by version), starts N clusters on 127.0.0.1 and writes one
kubeconfig per cluster into a directory: that is how a cluster joins fleet. Where kind and a
Docker engine exist, the same interface creates kind clusters instead. Used by the tests, the
bench and ``fleet demo``; fleet's own packages never import it.
"""

from __future__ import annotations

from fleet.controlplane.errors import KitError
from fleet.controlplane.local import LocalProvider, RunningCluster
from fleet.controlplane.provider import choose, make, status_lines, stop_detached

__all__ = [
    "KitError",
    "LocalProvider",
    "RunningCluster",
    "choose",
    "make",
    "status_lines",
    "stop_detached",
]
