"""Reaching clusters and git remotes: over SSH (routes, shared links, per-cluster tunnels), and
the cluster the hub runs in (:mod:`fleet.transport.incluster`, its ServiceAccount)."""

from __future__ import annotations

from fleet.transport import incluster
from fleet.transport.kubeconfig import tunneled_document
from fleet.transport.linkstate import LinkError, LinkRefused, LinkSettings, LinkStatus
from fleet.transport.routes import ApiTarget, Hop, SshRoute, api_target, parse_route
from fleet.transport.tunnels import Endpoint, Tunnels, TunnelSettings, TunnelState

__all__ = [
    "ApiTarget",
    "Endpoint",
    "Hop",
    "LinkError",
    "LinkRefused",
    "LinkSettings",
    "LinkStatus",
    "SshRoute",
    "TunnelSettings",
    "TunnelState",
    "Tunnels",
    "api_target",
    "incluster",
    "parse_route",
    "tunneled_document",
]
