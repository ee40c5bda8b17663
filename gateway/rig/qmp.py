"""Just enough QMP (QEMU's JSON control socket) for the rig: `system_reset`, `cont`,
`set-action` and the SHUTDOWN/RESET events (gateway.rig.qemu: how resets are handled)."""

from __future__ import annotations

import json
import logging
import queue
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

_log = logging.getLogger(__name__)

EventListener = Callable[[str, dict[str, Any]], None]


class QmpError(RuntimeError):
    """A QMP command failed or the connection is gone."""


class Qmp:
    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._file = sock.makefile("rb")
        self._lock = threading.Lock()
        self._replies: queue.SimpleQueue[dict[str, Any] | None] = queue.SimpleQueue()
        self._listeners: list[EventListener] = []
        greeting = self._read()
        if greeting is None or "QMP" not in greeting:
            raise QmpError(f"not a QMP greeting: {greeting!r}")
        self._reader = threading.Thread(target=self._read_loop, name="qmp-reader", daemon=True)
        self._reader.start()
        self.execute("qmp_capabilities")

    @classmethod
    def connect(cls, path: str, *, timeout: float = 5.0) -> Qmp:
        deadline = time.monotonic() + timeout
        while True:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.connect(path)
                return cls(sock)
            except OSError as exc:
                sock.close()
                if time.monotonic() > deadline:
                    raise QmpError(f"cannot connect to QMP at {path}: {exc}") from exc
                time.sleep(0.01)

    def add_listener(self, listener: EventListener) -> None:
        """`listener(event_name, data)` runs on the reader thread."""
        self._listeners.append(listener)

    def execute(
        self, command: str, arguments: dict[str, Any] | None = None, *, timeout: float = 5.0
    ) -> Any:
        message: dict[str, Any] = {"execute": command}
        if arguments:
            message["arguments"] = arguments
        with self._lock:
            try:
                self._sock.sendall(json.dumps(message).encode() + b"\n")
            except OSError as exc:
                raise QmpError(f"QMP send failed: {exc}") from exc
            try:
                reply = self._replies.get(timeout=timeout)
            except queue.Empty:
                raise QmpError(f"no QMP reply to {command} in {timeout} s") from None
        if reply is None:
            raise QmpError(f"QMP connection closed on {command}")
        if "error" in reply:
            raise QmpError(f"QMP {command}: {reply['error']}")
        return reply.get("return")

    def close(self) -> None:
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._file.close()
        self._sock.close()

    def _read(self) -> dict[str, Any] | None:
        line = self._file.readline()
        if not line:
            return None
        message: dict[str, Any] = json.loads(line)
        return message

    def _read_loop(self) -> None:
        try:
            while (message := self._read()) is not None:
                if "event" in message:
                    for listener in list(self._listeners):
                        try:
                            listener(message["event"], message.get("data", {}))
                        except Exception:  # one bad listener must not stop the reader
                            _log.exception("QMP event listener failed")
                else:
                    self._replies.put(message)
        except (OSError, ValueError):
            pass
        finally:
            self._replies.put(None)
