"""The one interface the rig needs from an emulator, so a Renode backend can sit beside QEMU."""

from __future__ import annotations

import abc
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from gateway.rig.gpio import Gpio


class EmulatorError(RuntimeError):
    """The emulator could not be started or stopped, or stopped by itself."""


class Emulator(abc.ABC):
    """One emulated board: its process, its UART as a pyserial URL, and its GPIO."""

    @abc.abstractmethod
    def start(self, *, timeout: float = 10.0) -> None:
        """Start the board running; returns once the UART and GPIO ends accept clients."""

    @abc.abstractmethod
    def stop(self) -> None:
        """Stop this board's process (and nothing else). Safe to call twice."""

    @abc.abstractmethod
    def reset(self) -> None:
        """Hard reset: RAM and peripherals restart, the filesystem stays, main.py runs."""

    @abc.abstractmethod
    def on_reset(self, callback: Callable[[], None]) -> None:
        """Call `callback` after every reset, whoever caused it (the host or the firmware)."""

    def flash_image(self, image: Path, *, timeout: float = 10.0) -> None:
        """Flash a whole image (Intel HEX), as a micro:bit's DAPLink does: everything on the
        board is erased and it starts in the new image. Backends that can, override this."""
        raise EmulatorError(f"{type(self).__name__} cannot take a whole image")

    @property
    @abc.abstractmethod
    def running(self) -> bool: ...

    @property
    @abc.abstractmethod
    def pid(self) -> int | None: ...

    @property
    @abc.abstractmethod
    def uid(self) -> str:
        """The board id its firmware reports (board.UID in its hello), as upper-case hex;
        every board its own, kept across resets."""

    @property
    @abc.abstractmethod
    def serial_url(self) -> str:
        """For `serial.serial_for_url`; one client at a time."""

    @property
    @abc.abstractmethod
    def gpio_address(self) -> str:
        """Where a GPIO client connects (backend specific: a qtest socket path for QEMU)."""

    @abc.abstractmethod
    def open_gpio(self) -> Gpio:
        """Connect a GPIO client (one at a time); the caller closes it."""

    def __enter__(self) -> Emulator:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
