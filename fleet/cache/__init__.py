"""The content-addressed manifest cache: keys, the on-disk store, single-flight coalescing."""

from __future__ import annotations

from fleet.cache.flight import SingleFlight
from fleet.cache.keys import render_key
from fleet.cache.store import CacheSettings, CacheStats, ManifestCache

__all__ = ["CacheSettings", "CacheStats", "ManifestCache", "SingleFlight", "render_key"]
