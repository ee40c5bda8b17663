"""A test's handle on the seat: the device under test, a host Session since the board's last
reset, and the seat's frames, inputs and light as the tests speak of them.

Frames are waited for in order: each wait starts after the frame the previous one returned,
unless given `since=` (a `mark()`). Everything the board says is read and acked by the host
while a test waits (`pump`), and an idle host pings every couple of seconds so the seat
keeps its link up (its link-lost overlay would otherwise flash white after 15 s); `quiet`
lets time pass with the host link silent instead.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

from gateway.seatlink import messages
from gateway.seatlink.codec import (
    Direction,
    EventCode,
    FrameError,
    Reason,
    SettingKey,
    State,
    Why,
    decode,
    next_seq,
)
from gateway.seatlink.messages import (
    Command,
    Event,
    Heartbeat,
    Hello,
    MessageError,
    Reject,
    SeatMessage,
    Snapshot,
    parse_message,
)
from gateway.seatlink.session import Session
from hil_tests.dut import Dut, DutError, LightHistory, colour_name

__all__ = ["BootError", "LightWant", "Seat"]

M = TypeVar("M", Hello, Snapshot, Event, Reject, Heartbeat)
LightWant = int | Callable[[int], bool]

KEEPALIVE_S = 2.0  # well inside the seat's link-up window (3 heartbeats, 3 s at the fastest)
SETTINGS_PER_FRAME = 5  # docs/protocol.md: a G frame carries at most 5 pairs
TRACEBACK = b"Traceback (most recent call last)"
CRASH_QUIET_S = 1.0


class BootError(DutError):
    """The board did not greet the host after a reset."""


def _describe(want: LightWant) -> str:
    return colour_name(want) if isinstance(want, int) else getattr(want, "__name__", "a match")


def _matcher(want: LightWant) -> Callable[[int], bool]:
    if callable(want):
        return want
    return lambda rgb: rgb == want


def first_light_match(history: LightHistory, want: LightWant, since_ns: int) -> int | None:
    """The first time at or after `since_ns` the light matched; the state at `since_ns`
    counts as `since_ns` (as gateway.rig.Gpio.wait_light)."""
    match = _matcher(want)
    before = [rgb for t, rgb in history if t <= since_ns]
    if before and match(before[-1]):
        return since_ns
    return next((t for t, rgb in history if t > since_ns and match(rgb)), None)


class Seat:
    """One host session with the seat on `dut`; `reboot()` to start from a fresh boot."""

    def __init__(self, dut: Dut) -> None:
        self.dut = dut
        self.session = Session(dut.port)
        self.hello: Hello | None = None
        self.boot_snapshot: Snapshot | None = None
        self._cursor = 0

    # --- boot ---------------------------------------------------------------------------

    def reboot(self, *, new_session: bool = True) -> Hello:
        """Reset the board and wait for its hello and boot snapshot. With `new_session` the
        host starts afresh too (a new test); without, the running session has to notice
        the restart itself (docs/protocol.md, Host)."""
        self.dut.drain()
        self.dut.reset()
        if new_session:
            self.session = Session(self.dut.port)
            self._cursor = 0
        since = self.mark()
        self.hello = self.wait_hello(since=since)
        self.boot_snapshot = self.wait_message(Snapshot, what="the boot snapshot after the hello")
        return self.hello

    def wait_hello(self, *, since: int | None = None, timeout: float | None = None) -> Hello:
        """The hello of a board that just restarted. The host stays silent until it comes,
        as a gateway would; a traceback instead (the firmware died at boot) ends the wait."""
        timeout = self.dut.boot_timeout if timeout is None else timeout
        rx = self.dut.log.rx
        rx_start = rx_seen = len(rx)
        quiet_since = time.monotonic()
        deadline = quiet_since + timeout
        while True:
            try:
                return self.wait_message(Hello, timeout=0.25, since=since, what="hello",
                                         keepalive=False)  # fmt: skip
            except AssertionError:
                pass
            self.dut.check()
            now = time.monotonic()
            if len(rx) != rx_seen:
                rx_seen, quiet_since = len(rx), now
            # a traceback, then silence: main.py is over and the REPL waits
            crashed = TRACEBACK in rx[rx_start:] and now - quiet_since >= CRASH_QUIET_S
            if crashed or now >= deadline:
                break
        why = "the firmware died at boot" if crashed else f"no hello within {timeout} s"
        raise BootError(
            f"{why}: the board ({self.dut.describe()}) never greeted the host after its reset; "
            f"serial log, the last bytes the board sent:\n{self.dut.log.tail()}"
        )

    # --- time passing -------------------------------------------------------------------

    def pump(self, seconds: float = 0.0, *, keepalive: bool = True) -> None:
        """Let `seconds` pass while the host reads, acks and (keepalive) pings."""
        end = time.monotonic() + seconds
        while True:
            if keepalive:
                self._keepalive()
            self.session.poll(min(0.05, max(0.0, end - time.monotonic())))
            if time.monotonic() >= end:
                return

    def quiet(self, seconds: float) -> None:
        """Let `seconds` pass with the host link silent: nothing read, acked or pinged."""
        self.dut.note(f"host silent for {seconds} s")
        time.sleep(seconds)

    def _keepalive(self) -> None:
        last = next((e.t for e in reversed(self.session.log) if e.outgoing), None)
        if last is None or self.session.clock() - last >= KEEPALIVE_S:
            self.session.ping()

    # --- frames -------------------------------------------------------------------------

    def mark(self) -> int:
        """A position for since=: only frames delivered after now."""
        return self.session.mark()

    def messages(self, since: int = 0) -> list[SeatMessage]:
        return [parse_message(f) for f in self.session.frames[since:]]

    def events(self, code: EventCode | None = None, *, since: int = 0) -> list[Event]:
        return [m for m in self.messages(since)
                if isinstance(m, Event) and (code is None or m.code is code)]  # fmt: skip

    def rejects(self, *, since: int = 0) -> list[Reject]:
        return [m for m in self.messages(since) if isinstance(m, Reject)]

    def recent(self, count: int = 12) -> str:
        """The last frames delivered, for failure messages."""
        frames = self.session.frames[-count:]
        return "\n".join(f"  {f.encode().decode('ascii', 'replace').strip()}" for f in frames)

    def wait_message(
        self,
        cls: type[M],
        predicate: Callable[[M], bool] = lambda m: True,
        *,
        timeout: float = 5.0,
        since: int | None = None,
        what: str = "",
        keepalive: bool = True,
    ) -> M:
        """The first `cls` message matching `predicate` after `since` (default: after the
        last one a wait returned), reading the line until `timeout` seconds."""
        index = self._cursor if since is None else since
        deadline = time.monotonic() + timeout
        while True:
            frames = self.session.frames
            while index < len(frames):
                frame = frames[index]
                index += 1
                if frame.kind is not cls.KIND:
                    continue
                try:
                    message = cls.from_frame(frame)
                except MessageError as exc:
                    bad = f"a malformed {cls.__name__} from the seat: {exc}"
                    raise AssertionError(bad) from exc
                if predicate(message):
                    self._cursor = index
                    return message
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"no {what or cls.__name__} from the seat within {timeout} s; "
                    f"the last frames:\n{self.recent()}"
                )
            self.pump(0.02, keepalive=keepalive)

    def wait_event(
        self,
        code: EventCode,
        *,
        state: State | None = None,
        a: int | None = None,
        timeout: float = 5.0,
        since: int | None = None,
    ) -> Event:
        def match(e: Event) -> bool:
            return (e.code is code and (state is None or e.state is state)
                    and (a is None or e.a == a))  # fmt: skip

        what = f"event {code.name}" + (f" in {state.name}" if state is not None else "")
        return self.wait_message(Event, match, timeout=timeout, since=since, what=what)

    def wait_state(
        self,
        state: State,
        *,
        reason: Reason | None = None,
        why: Why | None = None,
        timeout: float = 5.0,
        since: int | None = None,
    ) -> Event:
        """The state-change event into `state` (and `reason`), checking `why` if given."""

        def match(e: Event) -> bool:
            return (e.code is EventCode.STATE and e.state is state
                    and (reason is None or e.reason is reason))  # fmt: skip

        what = f"state change to {state.name}" + (f" ({reason.name})" if reason else "")
        event = self.wait_message(Event, match, timeout=timeout, since=since, what=what)
        if why is not None:
            assert event.why is why, f"{what} caused by {event.why!r}, expected {why!r}"
        return event

    def no_state_change(self, *, since: int) -> None:
        changes = self.events(EventCode.STATE, since=since)
        assert not changes, f"unexpected state changes: {changes}"

    # --- commands -----------------------------------------------------------------------

    def send(self, command: Command) -> int | None:
        """A host command; reliable ones are acked before this returns (their seq)."""
        return self.session.send(command)

    def next_host_seq(self) -> int:
        """The seq the seat takes next, if it took the last reliable frame the host wrote
        (commands and Q alike): for frames written by hand."""
        for entry in reversed(self.session.log):
            if not entry.outgoing:
                continue
            try:
                frame = decode(entry.data, direction=Direction.HOST_TO_SEAT)
            except FrameError:
                continue  # garbage a test wrote
            if frame.kind.sequenced:
                return next_seq(frame.seq)
        raise AssertionError("the host has sent no reliable frame yet")

    def heartbeat(self, *, timeout: float = 3.0) -> Heartbeat:
        """Ping and return the heartbeat that answers it."""
        since = self.mark()
        self.session.ping()
        return self.wait_message(Heartbeat, timeout=timeout, since=since,
                                 what="heartbeat answering a ping")  # fmt: skip

    def settle(self, *, timeout: float = 5.0) -> Heartbeat:
        """Until every frame the seat had queued is delivered and acked (its heartbeat's
        queue depth is 0): after this, anything a command caused has been seen."""
        deadline = time.monotonic() + timeout
        cursor = self._cursor
        try:
            while True:
                beat = self.heartbeat(timeout=max(0.5, deadline - time.monotonic()))
                if beat.queue_depth == 0:
                    return beat
                if time.monotonic() >= deadline:
                    raise AssertionError(
                        f"the seat still had {beat.queue_depth} frames queued "
                        f"after {timeout} s; the last frames:\n{self.recent()}"
                    )
                self.pump(0.02)
        finally:
            self._cursor = cursor  # a barrier, not a wait: later waits see what came meanwhile

    def snapshot(self) -> Snapshot:
        """The seat's state now: settle, then Q and the snapshot it brings."""
        self.settle()
        cursor = self._cursor
        since = self.mark()
        self.session.sync()
        snapshot = self.wait_message(Snapshot, since=since, what="snapshot answering a Q")
        self._cursor = cursor
        return snapshot

    def settings(self, values: Mapping[SettingKey, int]) -> None:
        """Push settings (G frames of up to 5 pairs) and check the seat took every one."""
        items = list(values.items())
        for i in range(0, len(items), SETTINGS_PER_FRAME):
            part = dict(items[i : i + SETTINGS_PER_FRAME])
            since = self.mark()
            seq = self.send(messages.settings(part))
            self.settle()
            refused = [r for r in self.rejects(since=since) if r.command_seq == seq]
            assert not refused, f"the seat refused settings {part}: {refused}"

    def login(self) -> None:
        """To Ready by host command (T 1), without touching the inputs."""
        self.send(messages.set_state(State.READY))
        self.wait_state(State.READY)

    def write_raw(self, data: bytes, *, chunk: int = 16, gap_s: float = 0.02) -> None:
        """Bytes to the seat as they are (garbage, hand-made frames), in small paced pieces:
        the micro:bit's UART ring holds 64 bytes and the seat takes 16 per loop pass."""
        for i in range(0, len(data), chunk):
            self.session.write(data[i : i + chunk])
            self.pump(gap_s)

    # --- inputs -------------------------------------------------------------------------

    @property
    def drives_inputs(self) -> bool:
        return self.dut.drives_inputs

    def set_input(self, name: str, level: int | bool) -> int:
        return self.dut.set_input(name, level)

    def press(self, name: str, *, hold_s: float = 0.1) -> int:
        """Press and release (longer than the 30 ms debounce lockout); returns the release
        time, the edge READY acts on."""
        self.set_input(name, 1)
        self.pump(hold_s)
        return self.set_input(name, 0)

    def lift(self) -> int:
        """The agent lifts the headset off its hanger."""
        return self.set_input("hanger", 0)

    def hang_up(self) -> int:
        """The agent puts the headset back on its hanger."""
        return self.set_input("hanger", 1)

    def press_answer(self) -> int:
        """The headset's call button, pressed and released; the press time (it acts on
        the press, not the release)."""
        t = self.set_input("answer", 1)
        self.pump(0.1)
        self.set_input("answer", 0)
        return t

    # --- light --------------------------------------------------------------------------

    @property
    def sees_light(self) -> bool:
        return self.dut.sees_light

    def light(self) -> int:
        return self.dut.light()

    def light_changes(self, since_ns: int) -> LightHistory:
        """The light at `since_ns` (stamped `since_ns`) and every change after it."""
        history = self.dut.light_history()
        before = [(since_ns, rgb) for t, rgb in history if t <= since_ns][-1:]
        return before + [(t, rgb) for t, rgb in history if t > since_ns]

    def wait_light(
        self,
        want: LightWant,
        *,
        timeout: float = 5.0,
        since_ns: int | None = None,
        pump: bool = True,
    ) -> int:
        """When the light first matched `want` (a colour or a predicate) at or after
        `since_ns` (default now); waits up to `timeout` s, reading the line if `pump`."""
        since = time.monotonic_ns() if since_ns is None else since_ns
        deadline = time.monotonic() + timeout
        while True:
            found = first_light_match(self.dut.light_history(), want, since)
            if found is not None:
                return found
            if time.monotonic() >= deadline:
                seen = ", ".join(colour_name(rgb) for _, rgb in self.light_changes(since)[-12:])
                raise AssertionError(f"the light was never {_describe(want)} within "
                                     f"{timeout} s; since then it was: {seen}")  # fmt: skip
            if pump:
                self.pump(0.01)
            else:
                time.sleep(0.01)

    def wait_colours(
        self, colours: Sequence[int], *, timeout: float = 5.0, since_ns: int | None = None
    ) -> list[int]:
        """Each colour in turn, each seen after the previous one; their stamps."""
        stamps: list[int] = []
        since = time.monotonic_ns() if since_ns is None else since_ns
        deadline = time.monotonic() + timeout
        for colour in colours:
            since = self.wait_light(colour, timeout=max(0.0, deadline - time.monotonic()),
                                    since_ns=since + (1 if stamps else 0))  # fmt: skip
            stamps.append(since)
        return stamps

    def expect_steady(self, colour: int, *, for_s: float = 0.4, timeout: float = 5.0) -> None:
        """The light turns `colour` and holds it, without a blink, for `for_s` seconds."""
        start = self.wait_light(colour, timeout=timeout)
        self.pump(for_s)
        changes = self.light_changes(start)
        others = sorted({colour_name(rgb) for _, rgb in changes if rgb != colour})
        assert not others, f"the light was not steady {colour_name(colour)}: also {others}"

    def expect_blinking(
        self,
        on: int,
        off: int,
        *,
        cycles: int = 2,
        timeout: float = 5.0,
        since_ns: int | None = None,
    ) -> list[int]:
        """`on`, `off`, `on` ... for `cycles` full cycles; the stamps of the changes."""
        return self.wait_colours([on, off] * cycles + [on], timeout=timeout, since_ns=since_ns)
