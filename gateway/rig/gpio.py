"""The seat's signals on an emulated board, by logical name, with timestamps.

Inputs are driven by name (from boards/microbit.py's PINS); the light is the rgb bitmask
of the red/green/blue outputs (bit0 red, bit1 green, bit2 blue). Every light change is
kept with its `time.monotonic_ns()` stamp and `set_input` returns the stamp it was sent
at, so input-to-light latency is measured from outside the board.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection
from types import TracebackType
from typing import Protocol

from gateway.rig.pins import BoardPins, microbit_pins
from gateway.rig.qtest import OutputListener, QtestPort

RED, GREEN, BLUE = 1, 2, 4


class PinPort(Protocol):
    """What a backend (qtest for QEMU; Renode later) provides to `Gpio`."""

    @property
    def closed(self) -> bool: ...

    def watch(self, lines: Collection[int], listener: OutputListener) -> None:
        """Report every level of `lines` from now on, starting with their current levels."""

    def drive(self, line: int, level: int) -> int:
        """Drive an input line; returns time.monotonic_ns() when sent."""

    def sync(self) -> None:
        """Report the current levels of the watched lines again."""

    def hard_reset(self) -> None: ...

    def close(self) -> None: ...


class Gpio:
    """Drive the seat's inputs and watch its light. Thread safe."""

    SETTLE_NS = 10_000_000
    """Pin changes closer than this, with no input driven between them, are one change of
    colour (see _on_output): far below the firmware's shortest light phase (100 ms), above
    what a loaded host spreads the three pin writes of one change over (1.7 ms seen)."""

    def __init__(self, *, port: PinPort, pins: BoardPins) -> None:
        self._port = port
        self._pins = pins
        self._bits = pins.rgb_bits()
        self._cond = threading.Condition()
        self._levels: dict[int, int] = dict.fromkeys(self._bits, 0)
        self._history: list[tuple[int, int]] = [(time.monotonic_ns(), 0)]
        self._driven: dict[int, int] = {}
        self._driven_ns = 0  # when an input was last driven: a change after it is its own
        port.watch(self._bits, self._on_output)

    @classmethod
    def connect(cls, path: str, *, pins: BoardPins | None = None, timeout: float = 5.0) -> Gpio:
        """Attach to the qtest socket of a running QEMU (e.g. one `seatlink emulate` printed)."""
        return cls(port=QtestPort.connect(path, timeout=timeout), pins=pins or microbit_pins())

    @property
    def pins(self) -> BoardPins:
        return self._pins

    @property
    def closed(self) -> bool:
        return self._port.closed

    def close(self) -> None:
        self._port.close()

    def __enter__(self) -> Gpio:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # Inputs. Active high, as in boards/microbit.py.

    def set_input(self, name: str, level: int | bool) -> int:
        """Drive input `name` to 0/1; returns time.monotonic_ns() when the command was sent."""
        try:
            line = self._pins.inputs[name]
        except KeyError:
            raise KeyError(f"no input {name!r}; inputs: {sorted(self._pins.inputs)}") from None
        value = 1 if level else 0
        with self._cond:
            self._driven[line] = value
            self._driven_ns = time.monotonic_ns()
        return self._port.drive(line, value)

    def press(self, name: str) -> int:
        return self.set_input(name, 1)

    def release(self, name: str) -> int:
        return self.set_input(name, 0)

    def lift(self) -> int:
        """Lift the headset off its hanger (hanger input 0)."""
        return self.set_input("hanger", 0)

    def hang_up(self) -> int:
        """Put the headset back on its hanger (hanger input 1)."""
        return self.set_input("hanger", 1)

    # The light.

    def light(self) -> int:
        """Current rgb bitmask."""
        with self._cond:
            return self._history[-1][1]

    def light_history(self) -> list[tuple[int, int]]:
        """(monotonic_ns, rgb) of every change since connect or `clear_history`, first entry
        being the state then."""
        with self._cond:
            return list(self._history)

    def clear_history(self) -> None:
        with self._cond:
            self._history = [(time.monotonic_ns(), self._history[-1][1])]

    def wait_light(
        self,
        want: int | Callable[[int], bool],
        *,
        timeout: float = 5.0,
        since_ns: int | None = None,
    ) -> int:
        """The first time at or after `since_ns` (default: now) at which the light matched
        `want` (an rgb value or a predicate); the state at `since_ns` counts as `since_ns`.
        Waits up to `timeout` seconds, then raises TimeoutError."""
        match = want if callable(want) else (lambda rgb: rgb == want)
        since = time.monotonic_ns() if since_ns is None else since_ns
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = self._first_match(match, since)
                if found is not None:
                    return found
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._port.closed:
                    raise TimeoutError(
                        f"light never matched {want!r} in {timeout} s; now {self.light()}, "
                        f"history {self._history[-5:]}"
                    )
                self._cond.wait(remaining)

    def _first_match(self, match: Callable[[int], bool], since: int) -> int | None:
        at_since = [rgb for t, rgb in self._history if t <= since]
        if at_since and match(at_since[-1]):
            return since
        return next((t for t, rgb in self._history if t > since and match(rgb)), None)

    # Memory.

    def read_memory(self, address: int, size: int) -> bytes:
        """`size` bytes of the board's memory from `address`, where the port can read them
        (qtest can: `QtestPort.read_memory`)."""
        if not isinstance(self._port, QtestPort):
            raise NotImplementedError(f"{type(self._port).__name__} cannot read memory")
        return self._port.read_memory(address, size)

    # Reset.

    def reset(self) -> None:
        """Hard-reset the board through the CPU (AIRCR SYSRESETREQ); files survive."""
        self._port.hard_reset()
        self.after_reset()

    def after_reset(self) -> None:
        """A reset clears the GPIO peripheral, externally driven levels included: drive
        them again and re-read the light (reset turns every output off)."""
        with self._cond:
            driven = dict(self._driven)
        for line, value in driven.items():
            self._port.drive(line, value)
        self._port.sync()

    def _on_output(self, line: int, level: int, now: int) -> None:
        with self._cond:
            self._levels[line] = level
            rgb = sum(bit for ln, bit in self._bits.items() if self._levels[ln])
            if rgb == self._history[-1][1]:
                return
            last_t, _ = self._history[-1]
            if len(self._history) > 1 and now - last_t < self.SETTLE_NS and (
                self._driven_ns <= last_t
            ):
                # The board sets its three pins one after another: red on the way from off
                # to white lasts microseconds on a board, and nobody at the desk sees it. One
                # change, stamped when it began (none if it came back to where it was).
                self._history.pop()
                if rgb == self._history[-1][1]:
                    self._cond.notify_all()
                    return
                now = last_t
            self._history.append((now, rgb))
            self._cond.notify_all()
