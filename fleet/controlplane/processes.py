"""Child processes of the kit: started with a log file and a marker, stopped for sure.

Every process the kit starts carries ``FLEET_KIT_ID=<id>`` in its environment, so the processes of
a kit can always be found again in ``/proc``, even after the Python process that started them is
gone: :func:`find_marked` is how ``down`` stops a detached kit and how the tests prove that nothing
outlived a session.

An *attached* process (tests, bench, demo) also gets ``PR_SET_PDEATHSIG=SIGKILL``: if its parent
dies without cleaning up (SIGKILL, a crash), the kernel kills it. Such processes must be started
from the main thread, because the signal fires when the starting *thread* exits. Every process runs
in its own session, so a Ctrl-C at the terminal reaches only the kit, which stops them in order.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["MARKER", "Proc", "find_marked", "kill_pids", "start", "stop_all"]

MARKER = "FLEET_KIT_ID"
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


@dataclass
class Proc:
    """A started child: its name (``etcd``, ``c1/kube-apiserver``), handle and log file."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def exited(self) -> int | None:
        """The exit code if the process has ended, else None."""
        return self.popen.poll()

    def log_tail(self, lines: int = 5) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.strip().splitlines()[-lines:])


def start(
    name: str,
    argv: Sequence[str],
    *,
    log_path: Path,
    kit_id: str,
    attached: bool,
    env: Mapping[str, str] | None = None,
) -> Proc:
    """Start `argv` with stdout and stderr to `log_path`, marked with `kit_id`."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    child_env = dict(os.environ if env is None else env)
    child_env[MARKER] = kit_id
    with log_path.open("ab") as log:
        popen = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=child_env,
            start_new_session=True,
            preexec_fn=_die_with_parent if attached else None,  # noqa: PLW1509
        )
    return Proc(name=name, popen=popen, log_path=log_path)


def stop_all(procs: Iterable[Proc], *, grace: float = 10.0) -> None:
    """SIGTERM every process, wait up to `grace` seconds in all, then SIGKILL what is left.

    Processes are signalled in the order given (dependants first), then reaped.
    """
    live = [p for p in procs if p.exited() is None]
    for proc in live:
        with contextlib.suppress(ProcessLookupError):
            proc.popen.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for proc in live:
        try:
            proc.popen.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                proc.popen.kill()
            proc.popen.wait()


def find_marked(kit_id: str | None = None) -> dict[int, str]:
    """PIDs of live processes carrying the kit marker (of `kit_id`, or of any kit) -> kit id."""
    found: dict[int, str] = {}
    needle = MARKER.encode() + b"="
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state == "Z":
            continue  # a zombie is already dead; its parent will reap it
        for item in environ.split(b"\0"):
            if item.startswith(needle):
                value = item[len(needle) :].decode(errors="replace")
                if kit_id is None or value == kit_id:
                    found[int(entry.name)] = value
    return found


def kill_pids(pids: Iterable[int], *, grace: float = 10.0) -> None:
    """SIGTERM `pids` (not our children), wait up to `grace` seconds, then SIGKILL survivors."""
    pending = set(pids)
    for pid in pending:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while pending and time.monotonic() < deadline:
        pending = {pid for pid in pending if _alive(pid)}
        time.sleep(0.1)
    for pid in pending:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
