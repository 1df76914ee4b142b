"""Hostile symlinks for confinement tests: the chain of issue 11, committed to a real repository.

:func:`chain` commits ``DIR/up -> ../…/x`` (landing on ``BASE/x``, a real directory) and
``DIR/esc -> up/../…/TARGET``. Read one at a time, as a per-member check reads them, both texts
stay inside the repository; resolved by the kernel once both exist, ``esc`` climbs from where
``up`` lands, past the checkout's root up to ``/``, and then down to the absolute `target`.
``esc`` sorts, and so unpacks, before ``up``.
"""

from __future__ import annotations

from pathlib import Path

from tests.sources.gitkit import Remote

__all__ = ["DEEP", "chain"]

DEEP = "/".join(f"d{i}" for i in range(20))  # deep enough to climb to / from any temp dir


def chain(remote: Remote, *, base: str, target: Path, name: str = "esc") -> str:
    """Commit the chain under `base`, aimed at `target`; the repository path of its last link."""
    directory = f"{base}/files/{DEEP}"
    remote.commit({f"{base}/x/keep": "the directory the first link lands on\n"})
    depth = directory.count("/") + 1
    climb = depth - (base.count("/") + 1)
    remote.symlink(f"{directory}/up", "../" * climb + "x")
    remote.symlink(f"{directory}/{name}", "up/" + "../" * (depth + 1) + str(target).lstrip("/"))
    return f"{directory}/{name}"
