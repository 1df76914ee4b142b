"""Jsonnet files of a directory app, evaluated as Argo CD evaluates them, in a child process.

Evaluation uses the official Jsonnet bindings (PyPI ``jsonnet``, module ``_jsonnet``) when they
are installed; without them :func:`available` is false and the directory refuses the file by
name. Argo CD's options map one to one: ``extVars`` and ``tlas`` (a string, or code with
``code: true``), and ``libs``, library directories named from the repository root, searched after
the importing file's own directory, later ones first (the order of Jsonnet's file importer, with
the app's directory as the first library). The output is an object or an array of objects.

Bounds and confinement: each file is evaluated by a fresh ``python -I`` child run through
:func:`fleet.render.tools.run_tool` (the render's timeout kills it, its output is capped, its
environment is :func:`~fleet.render.tools.tool_env`, its cwd the checkout). The child's importer
resolves every ``import``, ``importstr`` and ``importbin`` itself: an absolute path, or one that
resolves (links followed) outside the checkout, is refused, and the checkout holds only the
plan's paths (the app's directory and the libraries). Error texts name repository paths, never
the checkout's absolute path.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

from fleet.errors import StalledError
from fleet.render import tools
from fleet.render.documents import objects_of
from fleet.render.spec import JsonnetOptions
from fleet.types import Manifest

__all__ = ["available", "evaluate", "lib_paths", "version"]

_CHILD = r"""
import json, os, sys
import _jsonnet

request = json.loads(sys.argv[1])
root = os.path.realpath(request["root"])
libs = [os.path.join(root, p) for p in request["jpaths"]]


def shown(text):
    return text.replace(root + os.sep, "").replace(root, ".")


def inside(path):
    real = os.path.realpath(path)
    return real == root or real.startswith(root + os.sep)


def load(base, rel):
    if os.path.isabs(rel):
        raise RuntimeError("import %r: an absolute path is refused" % rel)
    for directory in [base or root, *reversed(libs)]:
        candidate = os.path.normpath(os.path.join(directory, rel))
        if not inside(candidate):
            raise RuntimeError("import %r escapes the repository" % rel)
        if os.path.isfile(candidate):
            with open(candidate, "rb") as handle:
                return candidate, handle.read()
    raise RuntimeError(
        "import %r not found beside the importing file, in the app's path or in jsonnet.libs" % rel
    )


def pairs(kind, code):
    return {v["name"]: v["value"] for v in request[kind] if v["code"] is code}


try:
    out = _jsonnet.evaluate_file(
        os.path.join(root, request["file"]),
        ext_vars=pairs("ext", False),
        ext_codes=pairs("ext", True),
        tla_vars=pairs("tla", False),
        tla_codes=pairs("tla", True),
        import_callback=load,
    )
except RuntimeError as exc:
    lines = [line for line in shown(str(exc)).splitlines() if line.strip()]
    sys.stderr.write("error: " + " ".join(lines)[:400] + "\n")
    sys.exit(1)
sys.stdout.write(out)
"""


@functools.cache
def available() -> bool:
    """True when the Jsonnet bindings are installed."""
    return importlib.util.find_spec("_jsonnet") is not None


@functools.cache
def version() -> str:
    """The bindings' version (part of a directory render's cache key), or "" without them."""
    if not available():
        return ""
    return str(getattr(importlib.import_module("_jsonnet"), "version", "?"))


def lib_paths(options: JsonnetOptions) -> list[str]:
    """``jsonnet.libs`` as repository paths, each checked to stay inside the repository."""
    paths = []
    for lib in options.libs:
        parts = [p for p in lib.strip("/").split("/") if p not in ("", ".")]
        if lib.startswith("/") or ".." in parts or not parts:
            raise StalledError(
                f"spec.source.directory.jsonnet.libs {lib!r}: name a directory of the "
                "repository, relative to its root, without '..'"
            )
        paths.append("/".join(parts))
    return paths


async def evaluate(
    checkout: Path,
    file: str,
    *,
    app_path: str,
    options: JsonnetOptions,
    scratch: Path,
    max_output: int,
) -> list[Manifest]:
    """The objects jsonnet file `file` (a repository path) yields, per `options`."""
    request = {
        "root": str(checkout),
        "file": file,
        "jpaths": [app_path or ".", *lib_paths(options)],
        "ext": [_var(v) for v in options.ext_vars],
        "tla": [_var(v) for v in options.tlas],
    }
    command = [sys.executable, "-I", "-c", _CHILD, json.dumps(request)]
    try:
        out = await tools.run_tool(
            command,
            cwd=checkout,
            env=tools.tool_env(scratch),
            max_output=max_output,
            name="jsonnet",
        )
    except StalledError as exc:
        raise StalledError(f"path {file!r}: {exc}") from None
    try:
        value: Any = json.loads(out)
    except ValueError as exc:
        raise StalledError(f"path {file!r}: jsonnet output is not JSON: {exc}") from None
    docs = value if isinstance(value, list) else [value]
    return objects_of(docs, source=file)


def _var(var: Any) -> dict[str, Any]:
    return {"name": var.name, "value": var.value, "code": var.code}
