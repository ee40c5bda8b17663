"""`seatlink api` as a service: the app under uvicorn, as an async context manager
(`async with ApiService(settings) as api: api.url`), stopped cleanly on exit."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator
from typing import Any

import uvicorn

from gateway.api.accounts import AccountStore
from gateway.api.app import create_app
from gateway.api.settings import ApiSettings

log = logging.getLogger(__name__)


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # the process's own handlers (serve_until_signal) stop it through __aexit__; uvicorn's
        # would replace them and raise the signal again once it has stopped
        yield


class ApiService:
    START_TIMEOUT_S = 20.0

    def __init__(self, settings: ApiSettings, *, accounts: AccountStore | None = None) -> None:
        self.settings = settings
        self.app = create_app(settings, accounts=accounts)
        self._server: _Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._socket: socket.socket | None = None
        self.port = settings.port

    @property
    def url(self) -> str:
        scheme = "https" if self.settings.tls_certfile else "http"
        return f"{scheme}://{self.settings.host}:{self.port}"

    async def __aenter__(self) -> ApiService:
        s = self.settings
        # bound here, so port 0 gives a known free port before uvicorn starts
        sock = socket.socket(socket.AF_INET6 if ":" in s.host else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((s.host, s.port))
        self.port = sock.getsockname()[1]
        self._socket = sock
        config = uvicorn.Config(
            # per-message deflate cost more CPU than every other part of a feed's send
            # (tools/bench_api.py): the feed's messages are small and the network local
            self.app, log_level="warning", lifespan="on", ws_ping_interval=20,
            ws_per_message_deflate=False,
            ssl_certfile=None if s.tls_certfile is None else str(s.tls_certfile),
            ssl_keyfile=None if s.tls_keyfile is None else str(s.tls_keyfile),
        )  # fmt: skip
        server = _Server(config)
        self._server = server
        self._task = asyncio.create_task(server.serve(sockets=[sock]), name="uvicorn")
        async with asyncio.timeout(self.START_TIMEOUT_S):
            while not server.started:
                if self._task.done():
                    await self._task  # its error, or:
                    raise RuntimeError("the API server stopped while starting")
                await asyncio.sleep(0.02)
        log.info("seatlink api on %s", self.url)
        return self

    async def __aexit__(self, *exc: Any) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._socket is not None:
            self._socket.close()

    async def stopped(self) -> None:
        """Returns when the server ended on its own."""
        assert self._task is not None
        with contextlib.suppress(Exception):
            await asyncio.shield(self._task)
