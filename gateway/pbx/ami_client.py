"""An Asterisk Manager Interface client on asyncio streams.

    async with AmiClient(host="pbx", port=5038, username="seatlink", secret=...) as ami:
        reply = await ami.action("QueuePause", Interface="PJSIP/1001", Paused="true")
        async for event in ami.events():
            ...

One reader task takes everything the peer sends: a response goes to the action waiting for
its ActionID (never matched by order: Asterisk answers actions from several threads, and a
list action's events come between), an event goes to `events()`. A Ping every `ping_s`
proves the connection alive; a missing pong counts as a dead connection (a half-open TCP
connection after a PBX crash or a network split shows no error for minutes). Once the
connection is lost, `events()` raises `AmiConnectionLost` and every waiting action fails
with it: the caller reconnects (gateway/pbx/ami_bridge.py, `AmiBackend`).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import secrets
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from types import TracebackType

from gateway.pbx.ami_protocol import (
    AmiMessage,
    AmiParser,
    AmiProtocolError,
    FieldValue,
    encode_action,
)

log = logging.getLogger(__name__)


class AmiError(Exception):
    """The AMI peer refused something, did not answer, or is not an AMI peer."""


class AmiConnectionLost(AmiError):
    """The connection is gone (closed, reset, or silent past a ping): connect again."""


@dataclass
class ClientStats:
    actions_sent: int = 0
    responses: int = 0
    stray_responses: int = 0  # no action waits for their ActionID (timed out, or not ours)
    events: int = 0


class AmiClient:
    ping_s: float = 10.0  # keep-alive period; a Ping unanswered this long kills the connection
    connect_timeout_s: float = 5.0
    banner_timeout_s: float = 5.0
    action_timeout_s: float = 5.0

    def __init__(self, *, host: str, port: int = 5038, username: str, secret: str,
                 events: bool = True) -> None:  # fmt: skip
        self.host = host
        self.port = port
        self.username = username
        self._secret = secret
        self._want_events = events
        self.parser = AmiParser()
        self.stats = ClientStats()
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._pending: dict[str, asyncio.Future[AmiMessage]] = {}
        self._events: asyncio.Queue[AmiMessage | None] = asyncio.Queue()
        self._early: list[AmiMessage] = []  # came in the banner's chunk
        self._tasks: list[asyncio.Task[None]] = []
        self._lost: str | None = None
        # ActionIDs unique across connections too: a late response on a new connection to
        # an action of the old one can never be taken for another action's
        self._prefix = f"sl-{secrets.token_hex(4)}"
        self._ids = itertools.count(1)

    @property
    def banner(self) -> str | None:
        return self.parser.banner

    @property
    def connected(self) -> bool:
        return self._writer is not None and self._lost is None

    # --- life cycle -----------------------------------------------------------------------

    async def __aenter__(self) -> AmiClient:
        try:
            await self._open()
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:  # fmt: skip
        if exc_type is None and self._lost is None:
            with contextlib.suppress(AmiError):
                await self.action("Logoff", timeout_s=1.0)
        await self.close()

    async def _open(self) -> None:
        where = f"{self.host}:{self.port}"
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        except TimeoutError:
            raise AmiError(f"cannot connect to AMI at {where}: no answer within "
                           f"{self.connect_timeout_s} s") from None  # fmt: skip
        except OSError as exc:
            raise AmiError(f"cannot connect to AMI at {where}: {exc}") from exc
        await self._read_banner(where)
        self._tasks.append(asyncio.create_task(self._read(), name=f"ami-read-{where}"))
        reply = await self.action("Login", Username=self.username, Secret=self._secret,
                                  Events="on" if self._want_events else "off")  # fmt: skip
        if reply.name.lower() != "success":
            raise AmiError(f"AMI login as {self.username!r} at {where} refused: "
                           f"{reply.get('Message') or reply.name}")  # fmt: skip
        self._tasks.append(asyncio.create_task(self._ping(), name=f"ami-ping-{where}"))
        log.info("AMI %s: logged in as %s (%s)", where, self.username, self.banner)

    async def _read_banner(self, where: str) -> None:
        assert self._reader is not None
        try:
            async with asyncio.timeout(self.banner_timeout_s):
                while self.parser.banner is None:
                    chunk = await self._reader.read(4096)
                    if not chunk:
                        raise AmiError(f"{where} closed the connection before its AMI banner")
                    self._early += self.parser.feed(chunk)
        except TimeoutError:
            raise AmiError(f"{where} sent no AMI banner within {self.banner_timeout_s} s "
                           "(is it an AMI port?)") from None  # fmt: skip
        except AmiProtocolError as exc:
            raise AmiError(f"{where}: {exc}") from None
        except OSError as exc:
            raise AmiError(f"{where}: connection lost before the AMI banner: {exc}") from exc

    async def close(self) -> None:
        self._lose("the client closed the connection")
        current = asyncio.current_task()
        tasks = [t for t in self._tasks if t is not current]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        if self._writer is not None:
            with contextlib.suppress(OSError):
                await self._writer.wait_closed()

    def _lose(self, why: str) -> None:
        """The connection is over: fail what waits, end `events()`, drop the socket."""
        if self._lost is not None:
            return
        self._lost = why
        for future in self._pending.values():
            if not future.done():
                future.set_exception(AmiConnectionLost(why))
        self._events.put_nowait(None)
        if self._writer is not None:
            # abort, not close: a peer that stopped reading must not hold us in a flush
            self._writer.transport.abort()

    # --- actions and events ---------------------------------------------------------------

    async def action(self, name: str, *, timeout_s: float | None = None,
                     **fields: FieldValue) -> AmiMessage:  # fmt: skip
        """Send one action and return its response (Success or Error: the caller reads
        it). AmiError when none comes within `timeout_s`; AmiConnectionLost when the
        connection ends first; ValueError (nothing sent) for a value holding CR or LF."""
        return await self.request(name, fields, timeout_s=timeout_s)

    async def request(self, name: str, fields: Mapping[str, FieldValue], *,
                      timeout_s: float | None = None) -> AmiMessage:  # fmt: skip
        """`action` with its fields in a mapping (any header name, `timeout_s` too)."""
        action_id = f"{self._prefix}-{next(self._ids)}"
        data = encode_action(name, action_id=action_id, **fields)
        if self._lost is not None or self._writer is None:
            raise AmiConnectionLost(self._lost or "not connected")
        future: asyncio.Future[AmiMessage] = asyncio.get_running_loop().create_future()
        self._pending[action_id] = future
        timeout_s = self.action_timeout_s if timeout_s is None else timeout_s
        try:
            async with asyncio.timeout(timeout_s):
                self._writer.write(data)
                self.stats.actions_sent += 1
                await self._writer.drain()
                return await future
        except TimeoutError:
            raise AmiError(f"{name}: no response within {timeout_s} s") from None
        except OSError as exc:  # ConnectionResetError and friends, from drain()
            self._lose(f"AMI connection lost: {exc}")
            raise AmiConnectionLost(f"AMI connection lost: {exc}") from exc
        finally:
            self._pending.pop(action_id, None)

    async def events(self) -> AsyncIterator[AmiMessage]:
        """Every event in the order it came, until the connection is lost (then
        AmiConnectionLost)."""
        while True:
            event = await self._events.get()
            if event is None:
                self._events.put_nowait(None)  # a second reader ends too
                raise AmiConnectionLost(self._lost or "connection lost")
            yield event

    # --- tasks ----------------------------------------------------------------------------

    async def _read(self) -> None:
        assert self._reader is not None
        try:
            for message in self._early:
                self._dispatch(message)
            self._early.clear()
            while True:
                chunk = await self._reader.read(65536)
                if not chunk:
                    self._lose("the AMI peer closed the connection")
                    return
                for message in self.parser.feed(chunk):
                    self._dispatch(message)
        except OSError as exc:
            self._lose(f"AMI connection lost: {exc}")
        except Exception as exc:  # a bug here must not leave callers waiting for ever
            log.exception("AMI %s:%s: reader failed", self.host, self.port)
            self._lose(f"AMI reader failed: {exc!r}")

    def _dispatch(self, message: AmiMessage) -> None:
        if message.kind == "response":
            self.stats.responses += 1
            future = self._pending.get(message.action_id or "")
            if future is None or future.done():
                self.stats.stray_responses += 1
                log.debug("AMI response to no waiting action: %s", message.as_dict())
            else:
                future.set_result(message)
        else:
            self.stats.events += 1
            self._events.put_nowait(message)

    async def _ping(self) -> None:
        while self._lost is None:
            await asyncio.sleep(self.ping_s)
            try:
                await self.action("Ping", timeout_s=self.ping_s)
            except AmiConnectionLost:
                return
            except AmiError:
                log.warning("AMI %s:%s: no pong within %s s: the connection is dead",
                            self.host, self.port, self.ping_s)  # fmt: skip
                self._lose(f"no pong within {self.ping_s} s")
                return
