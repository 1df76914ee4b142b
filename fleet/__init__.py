"""fleet: one asyncio hub that keeps a fleet of Kubernetes clusters in sync with git."""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
