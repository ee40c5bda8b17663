"""Start emulator processes that cannot outlive the Python process that started them.

Each child gets a parent-death signal (`setpriv --pdeathsig`, util-linux), so a SIGKILLed
test run leaves no QEMU behind. Linux delivers that signal when the *thread* that forked
the child ends, not the process: boards are booted from worker threads that come and go,
so every child is forked from one daemon thread that lives as long as the interpreter.
"""

from __future__ import annotations

import queue
import shutil
import subprocess
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import IO

_Request = tuple[list[str], Path, "Future[subprocess.Popen[bytes]]"]
_requests: queue.SimpleQueue[_Request] = queue.SimpleQueue()
_lock = threading.Lock()
_thread: threading.Thread | None = None


def _serve() -> None:
    while True:
        argv, log_path, future = _requests.get()
        if not future.set_running_or_notify_cancel():
            continue
        try:
            with open(log_path, "ab") as log:
                future.set_result(_popen(argv, log))
        except BaseException as exc:  # handed to the caller, who re-raises it
            future.set_exception(exc)


def _popen(argv: list[str], log: IO[bytes]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, close_fds=True
    )


def _wrap(argv: Sequence[str]) -> list[str]:
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return list(argv)
    # setpriv execs the emulator, so the child's PID is the emulator's PID.
    return [setpriv, "--pdeathsig", "KILL", "--", *argv]


def spawn(argv: Sequence[str], *, log_path: Path) -> subprocess.Popen[bytes]:
    """Start `argv` with stdout and stderr appended to `log_path` (never a pipe: an unread
    pipe fills and stalls the emulator)."""
    global _thread
    with _lock:
        if _thread is None:
            _thread = threading.Thread(target=_serve, name="rig-spawner", daemon=True)
            _thread.start()
    future: Future[subprocess.Popen[bytes]] = Future()
    _requests.put((_wrap(argv), log_path, future))
    return future.result()
