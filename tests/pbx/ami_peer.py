"""A scripted Asterisk Manager Interface peer for tests: a real TCP server on 127.0.0.1 that
speaks AMI as Asterisk 18/20 does (banner, Login, Ping, QueuePause, Logoff, events).

It parses what the client sends strictly (CRLF line ends, a blank line after each action,
`Key: Value` lines) and keeps every framing fault in `errors`: a test that ends with
`errors == []` knows the client's framing is right, not just symmetric with its own parser.

    async with AmiPeer(users={"seatlink": "s3cret"}, interfaces={"PJSIP/1001"}) as peer:
        ... AmiClient(host=peer.host, port=peer.port, ...) ...
        await peer.send_event("AgentConnect", Queue="support", Interface="PJSIP/1001")
        await peer.drop()  # cut every connection, keep listening
        await peer.stop(); await peer.restart()  # down, then up on the same port
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import TracebackType

BANNER = b"Asterisk Call Manager/5.0.1\r\n"

Fields = dict[str, str | list[str]]


def wire(pairs: Iterable[tuple[str, str]]) -> bytes:
    return b"".join(f"{k}: {v}\r\n".encode() for k, v in pairs) + b"\r\n"


def _pairs(first: tuple[str, str], fields: Fields) -> list[tuple[str, str]]:
    out = [first]
    for key, value in fields.items():
        out += [(key, v) for v in ([value] if isinstance(value, str) else value)]
    return out


@dataclass(eq=False)
class _Session:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    user: str | None = None
    events: bool = True
    task: asyncio.Task[None] | None = None

    async def send(self, data: bytes) -> None:
        if self.writer.is_closing():
            return
        self.writer.write(data)
        with contextlib.suppress(ConnectionError):
            await self.writer.drain()


@dataclass(eq=False)
class AmiPeer:
    users: dict[str, str] = field(default_factory=lambda: {"seatlink": "s3cret"})
    interfaces: set[str] = field(default_factory=set)  # queue members QueuePause knows
    banner: bytes = BANNER
    host: str = "127.0.0.1"
    port: int = 0  # 0: a free port, chosen at the first start()

    answer_pings: bool = True
    deferred_actions: set[str] = field(default_factory=set)  # their responses wait for flush
    actions: list[list[tuple[str, str]]] = field(default_factory=list)  # every one, in order
    errors: list[str] = field(default_factory=list)  # framing faults in what the client sent
    logins: int = 0  # successful ones
    _server: asyncio.Server | None = None
    _sessions: list[_Session] = field(default_factory=list)
    _deferred: list[tuple[_Session, bytes]] = field(default_factory=list)

    # --- life cycle -----------------------------------------------------------------------

    async def __aenter__(self) -> AmiPeer:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:  # fmt: skip
        await self.stop()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def restart(self) -> None:
        """Listen again on the same port (after stop())."""
        await self.start()

    async def stop(self) -> None:
        """Stop listening and cut every connection (a PBX that went down)."""
        if self._server is not None:
            self._server.close()
        await self.drop()
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def drop(self) -> None:
        """Cut every connection at once (RST, as a crash or a network fault would);
        keep listening."""
        sessions, self._sessions = self._sessions, []
        self._deferred.clear()
        for s in sessions:
            s.writer.transport.abort()
        # each session ends by itself on the aborted socket (cancelling it would make
        # asyncio's stream callback log the cancellation as an error)
        tasks = [s.task for s in sessions if s.task is not None and not s.task.done()]
        if tasks:
            await asyncio.wait(tasks, timeout=2.0)

    @property
    def connections(self) -> int:
        return len(self._sessions)

    # --- what tests do --------------------------------------------------------------------

    async def send_event(self, name: str, **headers: str | list[str]) -> None:
        """One event to every logged-in connection that asked for events."""
        data = wire(_pairs(("Event", name), {"Privilege": "agent,all", **headers}))
        for s in list(self._sessions):
            if s.user is not None and s.events:
                await s.send(data)

    async def send_raw(self, data: bytes, *, chunk: int = 0, pause_s: float = 0.0) -> None:
        """Bytes as they are to every logged-in connection, in pieces of `chunk` bytes
        `pause_s` apart (0: at once): partial reads over a real socket."""
        pieces = [data[i : i + chunk] for i in range(0, len(data), chunk)] if chunk else [data]
        for s in list(self._sessions):
            if s.user is None:
                continue
            for piece in pieces:
                await s.send(piece)
                if pause_s:
                    await asyncio.sleep(pause_s)

    async def flush_deferred(self, *, reverse: bool = False) -> None:
        """Send the responses held back (deferred_actions), last first if `reverse`."""
        held, self._deferred = self._deferred, []
        for session, data in reversed(held) if reverse else held:
            await session.send(data)

    def actions_named(self, name: str) -> list[dict[str, str]]:
        return [dict(a) for a in self.actions if dict(a).get("Action", "").lower()
                == name.lower()]  # fmt: skip

    async def wait_until(self, check: Callable[[], object], timeout: float = 2.0) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                raise AssertionError(f"AMI peer: not within {timeout} s: {check}")
            await asyncio.sleep(0.01)

    # --- the server -----------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = _Session(reader, writer, task=asyncio.current_task())
        self._sessions.append(session)
        try:
            await session.send(self.banner)
            while True:
                try:
                    raw = await reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError as exc:
                    if exc.partial.strip():
                        self.errors.append(f"connection closed inside an action: "
                                           f"{exc.partial!r}")  # fmt: skip
                    return
                pairs = self._parse(raw)
                if pairs is not None and not await self._answer(session, pairs):
                    return
        except (ConnectionError, asyncio.LimitOverrunError):
            return
        finally:
            if session in self._sessions:
                self._sessions.remove(session)
            writer.transport.abort()

    def _parse(self, raw: bytes) -> list[tuple[str, str]] | None:
        pairs = []
        for line in raw[:-4].split(b"\r\n"):
            if b"\r" in line or b"\n" in line:
                self.errors.append(f"bare CR or LF in {line!r}")
            text = line.decode("utf-8", "replace")
            key, sep, value = text.partition(": ")
            if not sep or not key or key != key.strip():
                self.errors.append(f"not a 'Key: Value' line: {line!r}")
                continue
            pairs.append((key, value))
        if not pairs or pairs[0][0].lower() != "action":
            self.errors.append(f"an action must start with 'Action:': {raw!r}")
            return None
        self.actions.append(pairs)
        return pairs

    async def _answer(self, s: _Session, pairs: list[tuple[str, str]]) -> bool:
        """Answer one action as Asterisk would; False: close the connection."""
        a = {k.lower(): v for k, v in reversed(pairs)}  # the first of a repeated key wins
        name = a["action"].lower()
        reply = [("ActionID", a["actionid"])] if "actionid" in a else []

        def respond(status: str, *more: tuple[str, str]) -> bytes:
            return wire([("Response", status), *reply, *more])

        if name == "login":
            if self.users.get(a.get("username", "")) != a.get("secret"):
                await s.send(respond("Error", ("Message", "Authentication failed")))
                return False  # Asterisk hangs up after a failed login
            s.user = a["username"]
            s.events = a.get("events", "on").lower() not in ("off", "no", "false")
            self.logins += 1
            await s.send(respond("Success", ("Message", "Authentication accepted")))
            if s.events:
                await s.send(wire([("Event", "FullyBooted"), ("Privilege", "system,all"),
                                   ("Uptime", "12"), ("LastReload", "12"),
                                   ("Status", "Fully Booted")]))  # fmt: skip
            return True
        if s.user is None:
            await s.send(respond("Error", ("Message", "Authentication Required")))
            return True
        if name == "logoff":
            await s.send(respond("Goodbye", ("Message", "Thanks for all the fish.")))
            return False
        if name == "ping":
            if self.answer_pings:
                await s.send(respond("Success", ("Ping", "Pong"),
                                     ("Timestamp", f"{time.time():.6f}")))  # fmt: skip
            return True
        if name == "queuepause":
            known = {i.lower() for i in self.interfaces}
            paused = a.get("paused", "").lower() in ("true", "yes", "1")
            if a.get("interface", "").lower() in known:
                what = "paused" if paused else "unpaused"
                data = respond("Success", ("Message", f"Interface {what} successfully"))
            else:
                data = respond("Error", ("Message", "Interface not found"))
        else:
            data = respond("Error", ("Message", "Invalid/unknown command"))
        if name in {d.lower() for d in self.deferred_actions}:
            self._deferred.append((s, data))
        else:
            await s.send(data)
        return True
