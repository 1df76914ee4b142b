"""Confinement of a render to its checkout: every link resolves inside it, whatever their order.

A renderer reads what its checkout holds, and a checkout is a copy of the repository paths the
render plan names. What a tool opens is decided by the kernel, which follows every symbolic link
on the way, so a check of each link's *text* (the per-member check of
:meth:`fleet.sources.Snapshot.extract`) is not enough: in ``up -> ../../../x`` and
``esc -> up/../../../../../etc/passwd`` each text looks harmless on its own, but once ``up`` exists
the ``..`` after it climbs from where ``up`` points, not from where it stands.

:func:`check_tree` therefore looks at the tree once it is laid out, before any renderer runs:
every entry is a directory, a regular file or a symbolic link, and every link, resolved the way the
kernel resolves it (:func:`os.path.realpath`, all links of the chain followed), lands on an
existing file or directory inside the checkout, and not on a directory that contains the link
(a loop for any tool that walks the tree). It refuses the first offender, naming the link's
repository path and its target text; never the resolved absolute path, which would show the
hub's own directories.

Why that is enough: with every link landing inside, any path ``ROOT/a/b/...`` without ``..``
resolves inside too (each step is a real entry of a directory inside, or a link landing inside).
The paths renderers open are of that kind: our planners refuse a reference that leaves the
repository by name, Go tools (kustomize, helm) clean paths lexically before opening them, and
Helm serves ``.Files`` from the chart it loaded, not from the disk. Links are resolved now, once:
the checkout is a fresh private directory that only this process writes and the tools only read
(their HOME and temp dirs are elsewhere), so nothing can change it between check and render.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from fleet.errors import StalledError

__all__ = ["check_tree"]


def check_tree(root: Path) -> None:
    """Refuse `root` unless every entry under it is a file, a directory or a link landing inside."""
    real_root = Path(os.path.realpath(root))
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        for name in sorted([*dirnames, *filenames]):
            _check_entry(Path(dirpath) / name, root=root, real_root=real_root)


def _check_entry(path: Path, *, root: Path, real_root: Path) -> None:
    rel = path.relative_to(root).as_posix()
    mode = os.lstat(path).st_mode
    if stat.S_ISDIR(mode) or stat.S_ISREG(mode):
        return
    if not stat.S_ISLNK(mode):
        raise StalledError(f"path {rel!r} is neither a file, a directory nor a symlink")
    target = _shown(os.readlink(path))
    real = Path(os.path.realpath(path))
    if not real.is_relative_to(real_root):
        raise StalledError(
            f"path {rel!r} is a symlink to {target}, which escapes the repository; "
            "a symlink must resolve inside the repository, whatever the links it passes through"
        )
    if not real.exists():
        raise StalledError(
            f"path {rel!r} is a symlink to {target}, which does not resolve to a file or "
            "directory of the render's checkout (it holds only the paths the render reads); "
            "point it at a path the app reads, or copy the file"
        )
    if Path(os.path.realpath(path.parent)).is_relative_to(real):
        raise StalledError(
            f"path {rel!r} is a symlink to {target}, a directory that contains the link "
            "(a loop); remove the link"
        )


def _shown(target: str, limit: int = 200) -> str:
    """A link's text for a message: quoted (control characters escaped) and bounded."""
    return repr(target if len(target) <= limit else target[:limit] + "...")
