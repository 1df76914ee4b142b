"""Settings shared by every layer, as small frozen dataclasses grouped by concern.

Only what more than one package needs lives here; each package keeps its own settings beside its
code. Defaults come from the environment once, when a settings object is made, never at import.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Paths", "default_cache_dir"]


def default_cache_dir() -> Path:
    """``$FLEET_CACHE_DIR``, else ``$XDG_CACHE_HOME/fleet``, else ``~/.cache/fleet``.

    Everything under it can be rebuilt: git mirrors, the render cache, the kit's Go builds.
    """
    explicit = os.environ.get("FLEET_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "fleet"


@dataclass(frozen=True)
class Paths:
    """Where fleet keeps its files."""

    cache_dir: Path = field(default_factory=default_cache_dir)
