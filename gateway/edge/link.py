"""One seat link of the edge gateway: a serial port, the host side of docs/protocol.md.

Design requirements (issue 3):
- One asyncio task per link; the port is pyserial's (`socket://` reaches emulated and
  virtual boards, a device path a real one), read when the loop says it is readable and
  written without blocking, so hundreds of links share one thread.
- A port that fails or disappears is closed and opened again with backoff, for ever; the
  seat keeps its unacked frames meanwhile and resends them (go-back-N), so nothing is lost.
- Every reliable seat frame is in the outbox (committed) before the seat hears its ack.
  Its id is (board uid, boot counter, n), n the frame's ordinal in the boot: the seq
  counted on past its wrap, from the newest stored (docs/mqtt.md). The outbox refuses a
  repeat across restarts.
- The board is bound to its seat by its uid (from its hello or any heartbeat) through the
  inventory. A board the inventory does not know is quarantined: its frames are read but
  neither stored nor acked, so once facilities provision it everything it holds arrives.
- A count starts where it stands: after the newest seq stored from that board and boot, or
  before its hello; until that is known the seat's frames are held, never taken from a
  newer one (docs/edge.md, "Identification").
- Commands go one at a time, each resent until acked or out of attempts; each has a
  deadline, and one still queued past it is reported expired, never sent late. A Q opens
  every connection and closes every gap (the receiver asks for it); the seat's settings
  are pushed once per boot (the seat keeps them in RAM only) and when they change.
- The link is kept alive with a ping whenever nothing was written for a heartbeat period;
  the seat is offline after `heartbeat_misses` heartbeat periods without a frame.
- A firmware update takes the port (`held()`): the link closes it, stays closed and says
  why until the update gives it back, then opens it again as after any failure.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import serial

from gateway.aio import wait_event
from gateway.contract.payloads import (
    CommandResult,
    QuarantinedBoard,
    SeatEvent,
    SeatHealth,
    reason_name,
    state_name,
)
from gateway.edge.inventory import SeatBinding
from gateway.edge.outbox import Record, event_id
from gateway.edge.seat_view import SeatView
from gateway.edge.store import AsyncOutbox
from gateway.seatlink import messages
from gateway.seatlink.codec import (
    ErrorCode,
    Kind,
    SettingKey,
    encode,
    next_seq,
    seq_of_ordinal,
)
from gateway.seatlink.messages import (
    Command,
    Event,
    Heartbeat,
    Hello,
    MessageError,
    Reject,
    Snapshot,
    parse_message,
)
from gateway.seatlink.receiver import LineSplitter, Receiver, RxStatus

log = logging.getLogger(__name__)

_PING = encode(0, Kind.PING)
Stored = Hello | Snapshot | Event | Reject


class _HeldBack(Exception):
    """Ends a session: someone else (a firmware update) needs the port."""


class LinkStalled(ConnectionError):
    """The seat does not take what the gateway writes (its output backs up)."""


class Hub(Protocol):
    """What a link needs of the edge service around it."""

    @property
    def gateway(self) -> str: ...

    @property
    def outbox(self) -> AsyncOutbox: ...

    def binding(self, board: str) -> SeatBinding | None: ...

    def changed(self, link: SeatLink) -> None: ...

    def result(self, result: CommandResult) -> None: ...

    def sign_in(self, seat: str) -> SignIn | None:
        """Who is signed in at the seat, None while the gateway does not know (yet)."""
        ...


@dataclass(frozen=True, slots=True)
class SignIn:
    """An agent signed in at a seat (`agent` their id), or nobody (`agent` None)."""

    agent: str | None


# what a seat's "already" reject (ErrorCode.ALREADY) means, per command: a success
ALREADY = {Kind.RELEASED: "already released: the seat had released the call itself"}


@dataclass(eq=False)
class Request:
    """A command waiting to go to the seat; `id` None for the gateway's own (Q, settings)."""

    command: Command
    deadline: float  # monotonic
    id: str | None = None
    seat: str | None = None


@dataclass
class LinkStats:
    opens: int = 0
    open_failures: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    retransmits: int = 0
    resyncs: int = 0
    invalid_messages: int = 0  # good frames whose fields made no valid message
    stalls: int = 0
    commands: collections.Counter[str] = field(default_factory=collections.Counter)

    @property
    def reopens(self) -> int:
        return max(self.opens - 1, 0)


@dataclass(frozen=True)
class LinkTuning:
    heartbeat_misses: int = 3
    ack_timeout_s: float = 0.25
    attempts: int = 5
    reject_window_s: float = 1.0
    reopen_backoff_s: tuple[float, float] = (0.5, 10.0)
    baudrate: int = 115200
    queue_max: int = 100  # commands waiting per seat; more are refused (failed)
    out_max: int = 8192  # bytes the seat may leave unread before the link counts as stalled


class SeatLink:
    """`await link.run()` until cancelled. `submit` queues a command."""

    RESYNC_S = 0.15  # a gap still open this long after the last Q gets another (the resend
    # of a full queue takes the seat 10 passes, 50 ms)
    IDENTIFY_PING_S = 1.0  # a board not yet identified is pinged for its heartbeat

    def __init__(self, url: str, *, hub: Hub, tuning: LinkTuning | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        self.url = url
        self.hub = hub
        self.tuning = tuning or LinkTuning()
        self.clock = clock
        self.stats = LinkStats()
        self.rx = Receiver(known_start=True)
        self.board: str | None = None  # uid from the last hello (or remembered)
        # the board type its hello named (microbit, pico, esp32, virtual; or remembered)
        self.board_name: str | None = None
        self.boot: int | None = None
        self.firmware: str | None = None
        self.binding: SeatBinding | None = None
        self.view: SeatView | None = None
        self.heartbeat: Heartbeat | None = None
        self.is_open = False
        self.online = False
        self.why = "starting"
        self.first_heard: float | None = None  # time.time() of the first frame (quarantine)
        self.last_heard_wall: float | None = None
        self._last_heard = -1e9  # monotonic
        self._last_written = -1e9
        self._port: Any = None
        self._fd = -1
        self._lines = LineSplitter()
        self._out = bytearray()
        self._readable = asyncio.Event()
        self._kick = asyncio.Event()
        self._acked = asyncio.Event()
        self._queue: collections.deque[Request] = collections.deque()
        self._next_tx = 1
        self._inflight: int | None = None
        self._inflight_request: Request | None = None
        self._synced = False
        self._settings_due = False
        # (board, boot, settings) last pushed in full; a seat keeps them in RAM until reboot
        self._configured: tuple[object, ...] | None = None
        self._told: tuple[object, ...] | None = None  # board, boot, agent: the N last sent
        self._awaiting: dict[int, tuple[Request, float]] = {}  # acked, reject window open
        self._done: collections.OrderedDict[int, Request] = collections.OrderedDict()
        self._reboots = 0
        self._last_sync = -1e9
        self.hellos = 0  # hellos heard on this link (a firmware update waits for one)
        self._hold = asyncio.Event()  # someone wants the port
        self._hold_why = ""
        self._let_go = asyncio.Event()  # the port is closed and stays closed
        self._resume = asyncio.Event()

    # --- what the service reads -----------------------------------------------------------

    @property
    def seat(self) -> str | None:
        return None if self.binding is None else self.binding.seat

    @property
    def quarantined(self) -> bool:
        return self.is_open and self.binding is None and self.first_heard is not None

    def quarantine_entry(self) -> QuarantinedBoard | None:
        if not self.quarantined or self.first_heard is None or self.last_heard_wall is None:
            return None
        return QuarantinedBoard(link=self.url, board=self.board, firmware=self.firmware,
                                first_seen=round(self.first_heard, 3),
                                last_seen=round(self.last_heard_wall, 3))  # fmt: skip

    def health(self, t: float) -> SeatHealth | None:
        hb, seat = self.heartbeat, self.seat
        if hb is None or seat is None or self.board is None:
            return None
        rx, st = self.rx, self.stats
        return SeatHealth(
            seat=seat, gateway=self.hub.gateway, board=self.board, link=self.url,
            uptime_s=hb.uptime_s, free_heap=hb.free_heap, worst_loop_ms=hb.worst_loop_ms,
            firmware=self.firmware or hb.firmware, seat_bad_frames=hb.bad_frames,
            seat_dropped_frames=hb.dropped_frames, seat_queue_depth=hb.queue_depth,
            seat_retransmits=hb.retransmits, seat_loop_errors=hb.errors,
            frames_in=rx.delivered, crc_errors=rx.crc_errors, garbage=rx.garbage,
            duplicates=rx.duplicates, out_of_order=rx.out_of_order,
            retransmits=st.retransmits, resyncs=st.resyncs, reopens=st.reopens, t=round(t, 3),
            board_name=self.board_name, skipped=rx.skipped, lost_at_reset=rx.lost_at_reset,
            invalid_frames=st.invalid_messages,
        )  # fmt: skip

    def heartbeat_s(self) -> int:
        if self.binding is not None:
            return self.binding.settings.get(SettingKey.HEARTBEAT_S, SettingKey.HEARTBEAT_S.default)
        return SettingKey.HEARTBEAT_S.default

    # --- commands ---------------------------------------------------------------------------

    def submit(self, request: Request) -> None:
        if len(self._queue) >= self.tuning.queue_max:
            self._result(request, "failed", detail=f"{len(self._queue)} commands already "
                         "waiting for this seat")  # fmt: skip
            return
        self._queue.append(request)
        self._kick.set()

    def inventory_changed(self) -> None:
        """Bind, rebind or unbind the board after an inventory edit."""
        if self.board is None:
            return
        binding = self.hub.binding(self.board)
        if binding == self.binding:
            return
        was = self.binding
        self._bind(binding)
        if binding is not None and was is None:
            self.rx.forget()  # provisioned: its count starts from what is stored (sender)
            self._synced = False
        self._settings_due = binding is not None
        self._kick.set()
        self.hub.changed(self)

    # --- life cycle -------------------------------------------------------------------------

    async def run(self) -> None:
        remembered = await self.hub.outbox.linked_board(self.url)
        if remembered is not None and self.board is None:
            self.board, self.boot = remembered
            self.board_name = await self.hub.outbox.board_name(self.board)
            self._bind(self.hub.binding(self.board))
        first, cap = self.tuning.reopen_backoff_s
        delay = first
        try:
            while True:
                if self._hold.is_set():
                    await self._held_back()
                    delay = first
                    continue
                try:
                    port = await asyncio.to_thread(self._open)
                except (serial.SerialException, OSError, ValueError) as exc:
                    self.stats.open_failures += 1
                    self._set_online(False, f"cannot open: {exc}")
                    await wait_event(self._hold, delay)
                    delay = min(delay * 2, cap)
                    continue
                delay = first
                try:
                    await self._session(port)
                except* _HeldBack:
                    pass
                except* (serial.SerialException, OSError) as errors:
                    log.info("%s: link closed (%s)", self.url, errors.exceptions[0])
                finally:
                    closing = self._close(port)
                if self._hold.is_set():
                    # whoever takes the port next must find it closed, not closing
                    await asyncio.to_thread(closing.join)
                else:
                    await wait_event(self._hold, first)
        finally:
            self._set_online(False, "gateway stopped")

    async def _held_back(self) -> None:
        self._set_online(False, self._hold_why)
        if self.why != self._hold_why:  # offline already, for another reason
            self.why = self._hold_why
            self.hub.changed(self)
        self._let_go.set()
        await self._resume.wait()
        self._resume.clear()

    @contextlib.asynccontextmanager
    async def held(self, why: str, *, timeout: float = 10.0) -> AsyncIterator[None]:
        """The port, closed and left closed for the caller (a firmware update) until the
        block ends; then the link opens it again. `why` is the seat's availability reason
        meanwhile. TimeoutError if the link does not let go within `timeout` (it is not
        running)."""
        if self._hold.is_set():
            raise RuntimeError(f"{self.url} is already held: {self._hold_why}")
        self._hold_why = why
        self._let_go.clear()
        self._hold.set()
        try:
            async with asyncio.timeout(timeout):
                await self._let_go.wait()
            yield
        finally:
            self._hold.clear()
            self._let_go.clear()
            self._resume.set()

    async def _until_held(self) -> None:
        await self._hold.wait()
        raise _HeldBack

    def _open(self) -> Any:
        return serial.serial_for_url(self.url, baudrate=self.tuning.baudrate, timeout=0,
                                     write_timeout=0)  # fmt: skip

    def _close(self, port: Any) -> threading.Thread:
        loop = asyncio.get_running_loop()
        try:
            loop.remove_reader(port.fileno())
            loop.remove_writer(port.fileno())
        except (OSError, ValueError, serial.SerialException):
            pass
        # pyserial's socket:// close() sleeps 0.3 s: never on the event loop, which
        # serves every other link meanwhile
        closing = threading.Thread(target=_close_quietly, args=(port,), name="close-port",
                                   daemon=True)  # fmt: skip
        closing.start()
        self._port = None
        self.is_open = False
        self._out.clear()
        self._lines.clear()
        self._acked.set()  # a command waiting for its ack stops waiting
        self._set_online(False, self._hold_why if self._hold.is_set() else "link closed")
        return closing

    async def _session(self, port: Any) -> None:
        self._port = port
        self._fd = port.fileno()
        os.set_blocking(self._fd, False)
        self.is_open = True
        self.stats.opens += 1
        self._synced = False  # a Q opens every connection: fresh snapshot, known seqs
        self._settings_due = True
        loop = asyncio.get_running_loop()
        loop.add_reader(port.fileno(), self._readable.set)
        self.hub.changed(self)
        async with asyncio.TaskGroup() as group:
            group.create_task(self._reader())
            group.create_task(self._sender())
            group.create_task(self._until_held())

    # --- receiving --------------------------------------------------------------------------

    async def _reader(self) -> None:
        # pyserial opened and configured the port; the bytes go through its descriptor
        # directly (non-blocking), without pyserial's select() around every read
        fd = self._fd
        while True:
            await self._readable.wait()
            self._readable.clear()
            try:
                data = os.read(fd, 4096)
            except BlockingIOError:
                continue
            if not data:
                raise ConnectionError("the other end closed the link")
            self.stats.bytes_in += len(data)
            await self._feed(data)

    async def _feed(self, data: bytes) -> None:
        batch: list[tuple[Record, Stored, float]] = []
        ack: int | None = None
        for line, overlong in self._lines.feed(data):
            skipped, lost = self.rx.skipped, self.rx.lost_at_reset
            out = self.rx.take(line, overlong=overlong)
            if out.status in (RxStatus.GARBAGE, RxStatus.BLANK):
                continue
            self._heard()
            if self.rx.skipped != skipped:
                log.warning("%s: %s (seq %s)", self.url, out.note, out.ack)
            if self.rx.lost_at_reset != lost:
                log.warning("%s: the seat restarted holding %d frames not yet taken: lost "
                            "with its RAM", self.url, self.rx.lost_at_reset - lost)  # fmt: skip
            frame = out.frame
            assert frame is not None
            if out.status is RxStatus.ACK:
                if frame.fields and frame.fields[0] == self._inflight:
                    self._on_ack()
                continue
            if out.status is RxStatus.HELD:
                # not taken while the count's start is not known (Receiver.known_start);
                # a hello still says which board this is
                if frame.kind is Kind.HELLO:
                    with contextlib.suppress(MessageError):
                        hello = parse_message(frame)
                        assert isinstance(hello, Hello)
                        await self._on_hello(hello)
                self._kick.set()
                continue
            if out.status is not RxStatus.DELIVERED:
                if out.ack is not None and self.binding is not None:
                    await self._store(batch)  # an ack covers what came before it
                    batch, ack = [], None
                    self._write(encode(0, Kind.ACK, [out.ack]))
                if out.status is RxStatus.OUT_OF_ORDER:
                    self._reask_gap()
                self._kick.set()  # a gap wants a Q
                continue
            try:
                message = parse_message(frame)
            except MessageError as exc:
                # The frame arrived in order and will be resent until acked: ack it, count
                # it, say so. Storing it would give subscribers something they cannot read.
                self.stats.invalid_messages += 1
                log.warning("%s: invalid %s frame %r: %s", self.url, frame.kind.value, line, exc)
                if out.ack is not None and self.binding is not None:
                    ack = out.ack
                continue
            if isinstance(message, Heartbeat):
                await self._on_heartbeat(message)
                continue
            if isinstance(message, messages.Ack):
                continue  # not reached: acks are link business, handled above
            if isinstance(message, Hello):
                await self._on_hello(message)
            if self.binding is None or self.board is None or self.boot is None:
                self._quarantine_frame()
                continue
            assert self.rx.n is not None  # the ordinal of the frame just taken
            record = self._record(message, frame.seq, self.rx.n)
            batch.append(record)
            ack = out.ack
        await self._store(batch)
        if ack is not None and self.binding is not None:
            self._write(encode(0, Kind.ACK, [ack]))

    def _reask_gap(self) -> None:
        if (self.rx.gap_open and not self.rx.need_resync
                and self.clock() - self._last_sync >= self.RESYNC_S):
            self.rx.need_resync = True  # the resend the last Q asked for lost a frame too

    def _heard(self) -> None:
        self._last_heard = self.clock()
        self.last_heard_wall = time.time()
        if self.first_heard is None:
            self.first_heard = self.last_heard_wall
        if not self.online and self.binding is not None:
            self._set_online(True, "heard")

    async def _on_hello(self, hello: Hello) -> None:
        self.hellos += 1
        self._reboots = self.rx.reboots
        self.firmware = hello.firmware
        await self._identify(hello.uid, hello.boot)
        if hello.board != self.board_name:
            self.board_name = hello.board
            await self.hub.outbox.remember_board_name(hello.uid, hello.board)

    async def _identify(self, board: str, boot: int) -> None:
        """The board and boot on this link, from a hello or a heartbeat."""
        new = (board, boot) != (self.board, self.boot)
        if board != self.board:  # another board on this link: what type, if known
            self.board_name = await self.hub.outbox.board_name(board)
        self.board, self.boot = board, boot
        if new:
            await self.hub.outbox.remember_link(self.url, board=board, boot=boot)
        binding = self.hub.binding(board)
        if binding != self.binding:
            self._bind(binding)
            self.hub.changed(self)
        if binding is not None and new:
            self._settings_due = True  # RAM only on the seat: every boot needs them again
        self._kick.set()

    def _bind(self, binding: SeatBinding | None) -> None:
        if self.online and binding is None:
            self._set_online(False, "not in the inventory")
        self.binding = binding
        if binding is None:
            self.view = None
            return
        if self.view is None or self.view.seat != binding.seat:
            self.view = SeatView(seat=binding.seat, gateway=self.hub.gateway)

    def _quarantine_frame(self) -> None:
        # Neither stored nor acked: forget the count, so that once provisioned it starts
        # again from what is stored (nothing: from the hello), and nothing is skipped.
        self.rx.forget()
        self.hub.changed(self)

    async def _on_heartbeat(self, hb: Heartbeat) -> None:
        if hb.uid is not None and hb.boot is not None:
            # firmware that names itself in every heartbeat: identified even when its
            # hello was lost, and a new boot counter is a restart (the receiver holds the
            # new count until the sender places it)
            await self._identify(hb.uid, hb.boot)
        elif self.rx.reboots != self._reboots and self.rx.last is None:
            # older firmware, uptime went back with no new hello: the seat restarted and
            # its hello is gone; without the boot counter its frames have no ids: they
            # wait, unstored and unacked, until the board says hello
            self.boot = None
        self._reboots = self.rx.reboots
        self.heartbeat = hb
        self.firmware = hb.firmware
        if self.binding is not None:
            self.hub.changed(self)

    def _record(self, message: Stored, seq: int, n: int) -> tuple[Record, Stored, float]:
        assert self.binding is not None and self.board is not None and self.boot is not None
        t = time.time()
        data: dict[str, Any]
        kind: Literal["hello", "snapshot", "event", "reject"]
        if isinstance(message, Hello):
            kind = "hello"
            data = {"protocol": message.protocol, "firmware": message.firmware,
                    "board_name": message.board}  # fmt: skip
        elif isinstance(message, Snapshot):
            kind = "snapshot"
            data = {"state": state_name(message.state), "reason": reason_name(message.reason),
                    "call": message.call or None, "secs": message.secs, "help": message.help,
                    "off_hook": message.off_hook, "hold_over_limit": message.hold_over_limit,
                    "pending_state": None if message.pending_state is None
                    else state_name(message.pending_state),
                    "pending_reason": reason_name(message.pending_reason),
                    "misses": message.misses, "dropped": message.dropped}  # fmt: skip
        elif isinstance(message, Event):
            kind = "event"
            data = {"event": message.code.name.lower(), "state": state_name(message.state),
                    "reason": reason_name(message.reason), "call": message.call or None,
                    "a": message.a, "b": message.b}  # fmt: skip
        else:
            kind = "reject"
            request = self._rejected(message)
            data = {"command_seq": message.command_seq, "error": message.error.name.lower(),
                    "field": message.field,
                    "command_id": None if request is None else request.id}  # fmt: skip
        payload = SeatEvent(id=event_id(self.board, self.boot, n), seat=self.binding.seat,
                            gateway=self.hub.gateway, board=self.board, boot=self.boot, seq=seq,
                            t=round(t, 6), type=kind, data=data)  # fmt: skip
        record = Record(self.board, self.boot, seq, self.binding.seat, payload.dump(), n)
        return record, message, t

    async def _store(self, batch: list[tuple[Record, Stored, float]]) -> None:
        if not batch:
            return
        await self.hub.outbox.put_many([r for r, _, _ in batch])
        # the view follows what is stored, repeats included: they are the seat's truth too
        if self.view is not None:
            for _, message, t in batch:
                if isinstance(message, Snapshot):
                    self.view.snapshot(message, t)
                elif isinstance(message, Event):
                    self.view.event(message, t)
            assert self.board is not None and self.boot is not None
            self.view.board, self.view.boot = self.board, self.boot
        self.hub.changed(self)

    # --- sending ----------------------------------------------------------------------------

    def _write(self, data: bytes) -> None:
        port = self._port
        if port is None:
            return
        self._last_written = self.clock()
        self.stats.bytes_out += len(data)
        if self._out:
            self._out += data
        else:
            try:
                n = os.write(self._fd, data)
            except BlockingIOError:
                n = 0
            if n < len(data):
                self._out += data[n:]
                asyncio.get_running_loop().add_writer(self._fd, self._flush)
        if len(self._out) > self.tuning.out_max:
            self.stats.stalls += 1
            raise LinkStalled(f"{len(self._out)} bytes not taken by the seat")

    def _flush(self) -> None:
        port = self._port
        if port is None:
            return
        try:
            n = os.write(self._fd, self._out)
        except BlockingIOError:
            n = 0
        except OSError:
            n = 0
            self._out.clear()  # the reader hears of it too and closes the link
        del self._out[:n]
        if not self._out:
            asyncio.get_running_loop().remove_writer(self._fd)

    async def _sender(self) -> None:
        while True:
            self._tick()
            if self.binding is None:
                await self._idle()
                continue
            if self.board is None or self.boot is None:
                await self._idle()  # its frames can have no ids yet
                continue
            if self.rx.holding:
                await self._place_count(self.board, self.boot)
                continue
            if not self._synced or self.rx.need_resync:
                resync = self._synced
                if await self._send_reliable(messages.sync()):
                    self._last_sync = self.clock()
                    self._synced = True
                    self.rx.resynced()
                    self.stats.resyncs += resync
                continue
            if self._settings_due:
                self._settings_due = False
                await self._push_settings()
                continue
            told = self._sign_in_due()
            if told is not None:
                await self._tell_sign_in(told)
                continue
            if self._queue:
                await self._send_request(self._queue.popleft())
                continue
            await self._idle()

    async def _place_count(self, board: str, boot: int) -> None:
        # the count goes on from the newest frame stored from this board and boot (after a
        # gateway restart, a quarantine, a seat restart), or from its hello; with its
        # ordinal, so that ids go on past a wrap the stored count went through
        stored = await self.hub.outbox.last_ordinal(board, boot)
        hb = self.heartbeat
        dropped = hb.dropped_frames if hb is not None and hb.boot == boot else (
            0 if stored is None and hb is None else None)  # fmt: skip
        # a hello or heartbeat meanwhile may have named another boot: placed on a later pass
        if self.rx.holding and (self.board, self.boot) == (board, boot):
            last = 0 if not stored else seq_of_ordinal(stored)
            self.rx.start(last, boot, dropped=dropped, n=stored or 0)
            self._synced = False

    async def _idle(self) -> None:
        self._kick.clear()
        await wait_event(self._kick, 0.25)

    def _tick(self) -> None:
        now = self.clock()
        beat = self.heartbeat_s()
        if self.binding is not None and now - self._last_written >= beat:
            self._write(_PING)  # keeps the seat's link-up light and asks for a heartbeat
        elif self.board is None and now - self._last_written >= self.IDENTIFY_PING_S:
            self._write(_PING)  # its heartbeat names the board
        self._reask_gap()  # also when nothing more arrives after the gap
        silent = now - self._last_heard
        if self.online and silent > self.tuning.heartbeat_misses * beat:
            self._set_online(False, f"{self.tuning.heartbeat_misses} heartbeats missed")
        for seq, (request, until) in list(self._awaiting.items()):
            if now >= until:
                del self._awaiting[seq]
                self._done[seq] = request
                while len(self._done) > 64:
                    self._done.popitem(last=False)
                self._result(request, "done")
        for request in [r for r in self._queue if now >= r.deadline]:
            self._queue.remove(request)
            self._result(request, "expired", detail="not delivered before its deadline")

    async def _push_settings(self) -> None:
        assert self.binding is not None
        # every key, the seat's own default where the inventory names none: a setting
        # taken out of the inventory goes back to its default without a reboot
        own = self.binding.settings
        items = tuple((key, own.get(key, key.default)) for key in SettingKey)
        if self._configured == (self.board, self.boot, items):
            # same boot, same values: a reconnect (cable, gateway restart) needs no push,
            # and three more frames to get through would slow the seat's catching up
            return
        for at in range(0, len(items), 5):  # a G frame carries at most 5 pairs
            command = messages.settings(dict(items[at : at + 5]))
            if not await self._send_reliable(command):
                self._settings_due = True  # again once the link is back
                return
        self._configured = (self.board, self.boot, items)

    def _sign_in_due(self) -> SignIn | None:
        if self.binding is None or self._configured is None or self._configured[:2] != (
                self.board, self.boot):  # fmt: skip
            return None  # the settings first: a new boot has them from the gateway first
        signed = self.hub.sign_in(self.binding.seat)
        if signed is None or self._told == (self.board, self.boot, signed.agent):
            return None
        return signed

    async def _tell_sign_in(self, signed: SignIn) -> None:
        was = None if self._told is None or self._told[:2] != (self.board, self.boot) else (
            self._told[2])  # fmt: skip
        if was is not None and signed.agent is not None:
            # another agent took the seat over: the one before is logged out first
            if not await self._send_reliable(messages.agent_signed_in(False)):
                return
        if await self._send_reliable(messages.agent_signed_in(signed.agent is not None)):
            self._told = (self.board, self.boot, signed.agent)

    def sign_in_changed(self) -> None:
        self._kick.set()

    @property
    def told(self) -> SignIn | None:
        """What the seat's running boot was last told (N) about who is signed in; None: not
        told yet, and the seat takes any login."""
        if self._told is None or self._told[:2] != (self.board, self.boot):
            return None
        agent = self._told[2]
        return SignIn(agent=agent if isinstance(agent, str) else None)

    async def _send_request(self, request: Request) -> None:
        if self.clock() >= request.deadline:
            self._result(request, "expired", detail="not delivered before its deadline")
            return
        if await self._send_reliable(request.command, request):
            pass  # waiting for a reject, if any (_on_ack)
        elif not self.is_open:
            self._queue.appendleft(request)  # the link went: again when it is back
        else:
            self._result(request, "failed", detail=f"sent {self.tuning.attempts} times, "
                         "never acknowledged: the seat may or may not have it")  # fmt: skip

    def _on_ack(self) -> None:
        # The reject, if any, may be in the very same read as the ack: the command waits
        # for it from here, not from when the sender task next runs.
        request, self._inflight_request = self._inflight_request, None
        if request is not None and self._inflight is not None:
            self._awaiting[self._inflight] = (request, self.clock() + self.tuning.reject_window_s)
        self._acked.set()

    async def _send_reliable(self, command: Command, request: Request | None = None) -> bool:
        seq = self._next_tx
        line = command.encode(seq)
        self._next_tx = next_seq(seq)
        self._inflight, self._inflight_request = seq, request
        try:
            for attempt in range(self.tuning.attempts):
                if not self.is_open:
                    break
                if attempt:
                    self.stats.retransmits += 1
                self._acked.clear()
                self._write(line)
                if not await wait_event(self._acked, self.tuning.ack_timeout_s):
                    continue
                if self.is_open:
                    return True
        finally:
            self._inflight = self._inflight_request = None
        # The seat may never have had it, and takes only the seq after its last: resync.
        self._synced = False
        return False

    def _rejected(self, reject: Reject) -> Request | None:
        entry = self._awaiting.pop(reject.command_seq, None)
        already = ALREADY.get(entry[0].command.kind) if entry is not None and (
            reject.error is ErrorCode.ALREADY) else None  # fmt: skip
        if entry is not None and already is not None:
            self._result(entry[0], "done", detail=already)
            return entry[0]
        if entry is not None:
            self._result(entry[0], "rejected", error=reject.error, field=reject.field)
            return entry[0]
        request = self._done.pop(reject.command_seq, None)
        if request is not None and reject.error is ErrorCode.ALREADY:
            return request  # "done" went out already, and that is what it was
        if request is not None:
            self._result(request, "rejected", error=reject.error, field=reject.field,
                         late=True)  # fmt: skip
            return request
        if self._inflight == reject.command_seq:
            return None  # a reject can overtake nothing: the ack comes first
        log.warning("%s: reject of seq %d, no such command waiting", self.url,
                    reject.command_seq)  # fmt: skip
        return None

    def _result(self, request: Request, status: str, *, error: ErrorCode | None = None,
                field: int | None = None, detail: str = "", late: bool = False) -> None:
        self.stats.commands[status] += 1
        if request.id is None:
            if status != "done":
                log.warning("%s: the gateway's own %s command %s %s", self.url,
                            request.command.kind.value, status, detail)  # fmt: skip
            return
        self.hub.result(CommandResult(
            id=request.id, seat=request.seat or self.seat or "", gateway=self.hub.gateway,
            status=status,  # type: ignore[arg-type]
            error=None if error is None else error.name.lower(), field=field, detail=detail,
            late=late, t=round(time.time(), 3)))  # fmt: skip

    def _set_online(self, online: bool, why: str) -> None:
        if online == self.online:
            return
        self.online, self.why = online, why
        self.hub.changed(self)


def _close_quietly(port: Any) -> None:
    try:
        port.close()
    except (OSError, serial.SerialException):
        pass
