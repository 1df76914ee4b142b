"""Reconcile: the steps that turn an app and a cluster into work.

Modules are called through their names (``fleet.reconcile.desired``, ``fleet.reconcile.syncing``).
"""

from __future__ import annotations

__all__: list[str] = []
