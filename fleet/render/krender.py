"""The batch kustomize renderer: one long-lived ``krender`` process renders many kustomizations.

A ``kustomize build`` process costs 50-100 ms of CPU before it reads a file; a hub that renders
one kustomization per tenant pays that per entry. ``krender`` (a small Go program of ours,
``fleet/controlplane/gomod/krender``, built and cached like the kit's binaries) links the same
kustomize API and stays running: requests go to its stdin, one JSON object a line
(``{"id": N, "dir": "/abs/dir"}``), answers come back on its stdout in the order renders finish
(``{"id": N, "yaml": "..."}`` or ``{"id": N, "error": "..."}``), and it renders several at once in
goroutines. It builds exactly as ``kustomize build DIR --load-restrictor=LoadRestrictionsRootOnly``
does (no plugins, no exec or container functions, no Helm), and it exits when its stdin closes.

A request may carry the files instead of a directory on disk (``{"id": N, "dir": "app",
"files": {"app/kustomization.yaml": "...", ...}}``, repository-relative): krender lays them out
in an in-memory filesystem and reads nothing else, not even the disk. :meth:`BatchKustomize.
documents_of_files` sends that; it is what the hub's renders of plain-file trees use, sparing a
checkout written to disk and removed per render (the cost of a 1,000-entry commit was mostly
that).

A request may carry ``"format": "json"``: the answer is then ``{"id": N, "objects": [...]}``, the
same resources in the same order as JSON objects. They are exactly the YAML answer's objects
(kustomize makes its YAML from this very JSON), and decoding them costs a small part of what the
YAML costs (8-12 ms against 0.14 ms for a 50-object app). :meth:`BatchKustomize.documents` asks
for JSON and still accepts a YAML answer, which is what a krender built before the field sends:
:func:`documents_of` decodes either.

:class:`BatchKustomize` is the client. The process starts on first use, in a scratch directory of
its own with :func:`fleet.render.tools.tool_env` (nothing of the hub's environment), its stderr in
a file there (kustomize's warnings; the last lines explain a crash). No background task reads its
stdout: the callers take turns as reader (whoever holds the read lock reads one answer and hands it
to its waiter), so the client needs no task group of its own and lives as long as the object.
Writes are shared the same way: a request goes to an outbox, and the caller that finds no write
under way lets the event loop turn once, then writes every request queued by then (and those queued
while it writes) in one write: a commit's thousand tenants asking at once make a few pipe writes
and wake-ups of krender, not a thousand. A caller cancelled mid-render (its timeout, a shutdown)
kills the process, since a render that hangs would otherwise hold one of its slots for ever; the
other renders in flight then fail as transient and the next request starts a fresh process. A
process that exits fails its renders the same way.

:func:`locate` finds a built ``krender``: ``$FLEET_KRENDER``, else the newest build in the kit's
cache (``<cache>/controlplane/bin/krender-*/krender``), else none (the CLI is used).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import anyio
import anyio.lowlevel
from anyio.abc import Process
from anyio.streams.buffered import BufferedByteReceiveStream

from fleet.errors import StalledError, TransientError
from fleet.render import tools
from fleet.render.documents import DocumentLimits, load_yaml
from fleet.settings import default_cache_dir

__all__ = ["BatchKustomize", "documents_of", "locate"]

log = logging.getLogger(__name__)

_STDERR_TAIL = 4096


def locate() -> Path | None:
    """A built krender: ``$FLEET_KRENDER``, else the newest in the kit's cache, else None."""
    explicit = os.environ.get("FLEET_KRENDER")
    if explicit:
        path = Path(explicit).expanduser()
        return path if path.is_file() and os.access(path, os.X_OK) else None
    builds = (default_cache_dir() / "controlplane" / "bin").glob("krender-*/krender")
    found = [p for p in builds if p.is_file() and os.access(p, os.X_OK)]
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


@dataclass
class _Slot:
    done: anyio.Event = field(default_factory=anyio.Event)
    answer: dict[str, Any] | None = None
    size: int = 0  # bytes of the answer's line
    failure: Exception | None = None


@dataclass
class _Worker:
    """One running krender and the renders it owes."""

    process: Process
    scratch: Path
    stderr: IO[bytes]
    stdout: BufferedByteReceiveStream
    pending: dict[int, _Slot] = field(default_factory=dict)
    read_lock: anyio.Lock = field(default_factory=anyio.Lock)
    outbox: list[bytes] = field(default_factory=list)  # request lines not written yet
    flushing: bool = False  # a caller is writing the outbox
    broken: bool = False

    def stderr_tail(self) -> str:
        try:
            with (self.scratch / "stderr").open("rb") as file:
                file.seek(0, os.SEEK_END)
                file.seek(max(0, file.tell() - _STDERR_TAIL))
                text = file.read().decode(errors="replace")
        except OSError:
            return ""
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        return lines[-1][:500] if lines else ""

    def fail_all(self, error: Exception) -> None:
        """Mark the process gone and fail every render it owed with `error`."""
        self.broken = True
        for slot in self.pending.values():
            if slot.answer is None and slot.failure is None:
                slot.failure = error
                slot.done.set()
        self.pending.clear()

    def kill(self) -> None:
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)
        self.stderr.close()
        shutil.rmtree(self.scratch, ignore_errors=True)


class BatchKustomize:
    """Kustomize builds through one krender process (see the module docstring)."""

    def __init__(self, binary: Path, *, jobs: int = 4, max_output: int = 64 * 2**20) -> None:
        self.binary = binary
        self.jobs = max(1, jobs)
        self.max_output = max_output
        self.starts = 0  # processes started (tests and metrics)
        self.renders = 0  # renders answered
        self.from_files = 0  # of which built from files sent in the request (in its memory)
        self.yaml_decoded = 0  # JSON asked, YAML answered and decoded (a krender before JSON)
        self.writes = 0  # writes of requests to its stdin (a burst shares one)
        self._ids = itertools.count(1)
        self._start_lock = anyio.Lock()
        self._worker: _Worker | None = None
        self._takes_files: bool | None = None

    async def version(self) -> str:
        """``krender sigs.k8s.io/kustomize/api vX.Y.Z``: the kustomize the renders use."""
        return "krender " + (await self._ask("-version")).decode().strip()

    async def takes_files(self) -> bool:
        """Whether this build renders files sent in the request (``krender -features`` lists
        ``files``); asked once. A build older than the flag fails on it: then no."""
        if self._takes_files is None:
            try:
                out = await self._ask("-features")
            except (StalledError, TransientError):
                out = b""
            self._takes_files = "files" in out.decode(errors="replace").split()
            if not self._takes_files:
                log.info("event=krender_without_files binary=%s", self.binary)
        return self._takes_files

    async def _ask(self, flag: str) -> bytes:
        """What ``krender FLAG`` prints, run once in a scratch directory of its own."""
        with tempfile.TemporaryDirectory(prefix="fleet-tool-") as scratch:
            return await tools.run_tool(
                [str(self.binary), flag],
                cwd=Path(scratch),
                env=tools.tool_env(Path(scratch)),
                max_output=1 << 16,
                name="krender",
            )

    async def build(self, directory: Path, *, root: Path | None = None) -> bytes:
        """The YAML that ``kustomize build directory`` prints; errors as the CLI's would be, with
        `root` (the checkout) left out of the paths they name."""
        answer, _ = await self._render({"dir": str(directory)}, root=str(root or directory))
        text = str(answer.get("yaml", ""))
        if len(text) > self.max_output:
            raise StalledError(f"kustomize printed more than {self.max_output} bytes")
        return text.encode()

    async def documents(
        self, directory: Path, *, root: Path | None = None, limits: DocumentLimits
    ) -> list[Any]:
        """The documents ``kustomize build directory`` prints, decoded: asked as JSON, decoded
        from YAML within `limits` when krender answers YAML (a build older than the JSON answer);
        errors as :meth:`build`'s."""
        answer, size = await self._render(
            {"dir": str(directory), "format": "json"}, root=str(root or directory)
        )
        shown = str(directory).removeprefix(f"{root}/") if root else str(directory)
        return self._documents(answer, size, shown=shown, limits=limits)

    async def documents_of_files(
        self, files: Mapping[str, str], path: str, *, limits: DocumentLimits
    ) -> list[Any]:
        """The documents of the kustomization at repository path `path`, built from `files`
        (repository path -> text) alone, in krender's memory; errors as :meth:`documents`'s."""
        answer, size = await self._render(
            {"dir": path or ".", "format": "json", "files": dict(files)}, root=""
        )
        self.from_files += 1
        return self._documents(answer, size, shown=path or ".", limits=limits)

    def _documents(
        self, answer: dict[str, Any], size: int, *, shown: str, limits: DocumentLimits
    ) -> list[Any]:
        if "objects" in answer:
            too_big = size > self.max_output + 4096  # the line: the objects and a few bytes
        else:
            too_big = len(str(answer.get("yaml", ""))) > self.max_output
        if too_big:
            raise StalledError(f"kustomize printed more than {self.max_output} bytes")
        if "objects" not in answer:
            if not self.yaml_decoded:
                log.info("event=krender_answers_yaml binary=%s", self.binary)
            self.yaml_decoded += 1
        return documents_of(answer, source=f"kustomize build of {shown}", limits=limits)

    async def _render(self, request: dict[str, Any], *, root: str) -> tuple[dict[str, Any], int]:
        """krender's answer to one `request` (its ``id`` added) and its size; its error raised,
        with `root` (the checkout, ``""`` for files in memory) left out of the paths it names."""
        worker = await self._running()
        number = next(self._ids)
        slot = _Slot()
        worker.pending[number] = slot
        worker.outbox.append(json.dumps({"id": number, **request}).encode() + b"\n")
        sent = True  # from here on the request may be in the pipe, whole or in part
        try:
            if not worker.flushing:
                await self._flush(worker)
            while not slot.done.is_set():
                async with worker.read_lock:
                    if not slot.done.is_set():
                        await self._read_one(worker)
        except anyio.get_cancelled_exc_class():
            if sent and not slot.done.is_set():  # its render may hang: stop the process
                await self._discard(
                    worker, TransientError("krender was restarted: a render was cancelled")
                )
            raise
        except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError):
            await self._discard(worker, self._exited(worker))
        finally:
            worker.pending.pop(number, None)
        if slot.failure is not None:
            raise slot.failure
        if slot.answer is None:
            raise self._exited(worker)
        if "error" in slot.answer:
            cause = str(slot.answer["error"])
            cause = (cause.replace(f"{root}/", "") if root else cause).strip()
            raise StalledError(f"kustomize failed: {cause[:2000]}")
        self.renders += 1
        return slot.answer, slot.size

    async def _flush(self, worker: _Worker) -> None:
        """Write the outbox, and what is added to it meanwhile: the requests made in one turn of
        the event loop (a commit's thousand tenants ask together) go in one write, one wake-up
        of krender, not one each. Shielded: the others' requests are in it."""
        worker.flushing = True
        try:
            with anyio.CancelScope(shield=True):
                await anyio.lowlevel.checkpoint()  # the other callers of this turn add theirs
                while worker.outbox and not worker.broken:
                    data = b"".join(worker.outbox)
                    worker.outbox.clear()
                    await worker.process.stdin.send(data)  # type: ignore[union-attr]
                    self.writes += 1
        finally:
            worker.flushing = False

    async def aclose(self) -> None:
        """Stop the process (it would also stop by itself once this hub exits)."""
        worker, self._worker = self._worker, None
        if worker is not None:
            await self._discard(worker, TransientError("krender was stopped"))

    async def _running(self) -> _Worker:
        worker = self._worker
        if worker is not None and not worker.broken and worker.process.returncode is None:
            return worker  # no lock, no turn of the loop: a burst of requests shares one write
        async with self._start_lock:
            worker = self._worker
            if worker is not None and not worker.broken and worker.process.returncode is None:
                return worker
            if worker is not None:
                await self._discard(worker, self._exited(worker))
            self._worker = await self._start()
            return self._worker

    async def _start(self) -> _Worker:
        scratch = Path(tempfile.mkdtemp(prefix="fleet-krender-"))
        stderr = (scratch / "stderr").open("wb")
        try:
            process = await anyio.open_process(
                [str(self.binary), "-j", str(self.jobs)],
                cwd=scratch,
                env=tools.tool_env(scratch),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                start_new_session=True,
            )
        except OSError as exc:
            stderr.close()
            shutil.rmtree(scratch, ignore_errors=True)
            raise StalledError(f"cannot run krender {self.binary}: {exc.strerror}") from None
        assert process.stdout is not None
        self.starts += 1
        log.info("event=krender_started pid=%d jobs=%d", process.pid, self.jobs)
        return _Worker(process, scratch, stderr, BufferedByteReceiveStream(process.stdout))

    async def _read_one(self, worker: _Worker) -> None:
        """Read one answer and hand it to its waiter; a process gone fails every waiter."""
        limit = 2 * self.max_output + 4096  # JSON escapes every newline: room for that
        try:
            line = await worker.stdout.receive_until(b"\n", limit)
        except anyio.IncompleteRead:
            await self._discard(worker, self._exited(worker))
            return
        except anyio.DelimiterNotFound:
            await self._discard(
                worker, StalledError(f"kustomize printed more than {self.max_output} bytes")
            )
            return
        try:
            answer = json.loads(line)
            slot = worker.pending.get(int(answer["id"]))
        except (ValueError, KeyError, TypeError):
            await self._discard(worker, TransientError("krender answered a line that is not JSON"))
            return
        if slot is not None:
            slot.answer = answer
            slot.size = len(line)
            slot.done.set()

    async def _discard(self, worker: _Worker, error: Exception) -> None:
        worker.fail_all(error)
        worker.kill()
        if self._worker is worker:
            self._worker = None
        with anyio.CancelScope(shield=True), anyio.move_on_after(10):
            await worker.process.aclose()  # reaped and its pipes closed, killed or not

    def _exited(self, worker: _Worker) -> TransientError:
        cause = worker.stderr_tail() or f"exit status {worker.process.returncode}"
        return TransientError(f"krender exited: {cause}")


def documents_of(answer: dict[str, Any], *, source: str, limits: DocumentLimits) -> list[Any]:
    """The documents of one krender answer (from `source`, a name for messages): its JSON
    ``objects`` as they are, else its ``yaml`` decoded within `limits`."""
    if "objects" in answer:
        objects = answer["objects"]
        if not isinstance(objects, list):
            raise TransientError(f"{source}: krender answered objects that are not a list")
        return [doc for doc in objects if doc is not None]
    return load_yaml(str(answer.get("yaml", "")).encode(), source=source, limits=limits)
