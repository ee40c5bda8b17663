"""Calls into a thread that waits in select(): queue the call, wake the thread, get the result.

    calls = ThreadCalls()
    selector.register(calls.waker, EVENT_READ)   # the thread's own select loop
    ...  in the loop: calls.drain() when the waker is readable, calls.run() every round
    ...  elsewhere: result = calls.call(fn, thread=worker)

Used by the seat farm's scheduler and the FaultyLink proxy: each owns sockets that only its
thread may touch, and tests reach them through here.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from concurrent.futures import Future
from queue import Empty, SimpleQueue
from typing import Any, TypeVar

_T = TypeVar("_T")


class ThreadCalls:
    TIMEOUT_S = 5.0

    def __init__(self) -> None:
        self.waker, self._wake_w = socket.socketpair()
        self.waker.setblocking(False)
        self._wake_w.setblocking(False)
        self._queue: SimpleQueue[tuple[Callable[[], Any], Future[Any]]] = SimpleQueue()

    def call(self, fn: Callable[[], _T], *, thread: threading.Thread | None,
             timeout: float = TIMEOUT_S) -> _T:  # fmt: skip
        """fn's result, run on `thread` between its rounds (at once if that thread is not
        running, or is the caller)."""
        if thread is None or threading.current_thread() is thread:
            return fn()
        future: Future[_T] = Future()
        self._queue.put((fn, future))
        self.wake()
        return future.result(timeout)

    def wake(self) -> None:
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass  # full (a wake-up is pending anyway) or closed

    def drain(self) -> None:
        """Empty the waker (its thread saw it readable)."""
        try:
            while self.waker.recv(4096):
                pass
        except BlockingIOError:
            pass

    def run(self) -> None:
        """Run what is queued, on the owning thread."""
        while True:
            try:
                fn, future = self._queue.get_nowait()
            except Empty:
                return
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn())
                except BaseException as exc:
                    future.set_exception(exc)

    def cancel_all(self) -> None:
        """The owning thread is ending: nobody will run what is still queued."""
        while True:
            try:
                _, future = self._queue.get_nowait()
            except Empty:
                return
            future.cancel()

    def close(self) -> None:
        self.waker.close()
        self._wake_w.close()
