"""An emulated seat board: emulator + GPIO + raw REPL, and installing files on it."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType

from gateway.rig.drive import EmulatedDrive
from gateway.rig.emulator import Emulator, EmulatorError
from gateway.rig.gpio import Gpio
from gateway.rig.pins import BoardPins
from gateway.rig.qemu import QemuMicrobit
from gateway.rig.qtest import QtestError
from gateway.rig.rawrepl import RawRepl, RemoteError, ReplError, ReplTimeout

FS_BYTES = 15_100
"""File bytes the emulated micro:bit's filesystem took before ENOSPC (one file, measured)."""


class EmulatedBoard:
    """One emulated micro:bit. While the rig holds `gpio` it is the only qtest client, and
    the serial port is free except during `repl()`/`install()`."""

    def __init__(
        self,
        *,
        emulator: Emulator | None = None,
        pins: BoardPins | None = None,
        firmware_hex: Path | None = None,
    ) -> None:
        """`firmware_hex`: the image to boot (default: Debian's MicroPython, bare, at its
        REPL; the seat image from gateway.image boots into the seat firmware)."""
        self._emulator = emulator or QemuMicrobit(pins=pins, firmware_hex=firmware_hex)
        self._bare = firmware_hex is None
        self._gpio: Gpio | None = None
        self._drives: list[EmulatedDrive] = []
        self._emulator.on_reset(self._after_reset)

    @property
    def emulator(self) -> Emulator:
        return self._emulator

    @property
    def serial_url(self) -> str:
        return self._emulator.serial_url

    @property
    def gpio_address(self) -> str:
        return self._emulator.gpio_address

    @property
    def pid(self) -> int | None:
        return self._emulator.pid

    @property
    def uid(self) -> str:
        """The board id its hello reports (upper-case hex), its own and kept across resets."""
        return self._emulator.uid

    @property
    def running(self) -> bool:
        return self._emulator.running

    @property
    def gpio(self) -> Gpio:
        if self._gpio is None:
            raise EmulatorError("GPIO not connected (board not started, or released)")
        return self._gpio

    def start(self, *, timeout: float = 10.0, repl: bool | None = None) -> None:
        """Boot the board. Bare MicroPython: wait for its REPL. An image (`firmware_hex`):
        leave what boots running (the seat image's firmware) and return once the emulator
        serves its ports. `repl` says which, when the default does not fit."""
        if repl is None:
            repl = self._bare
        try:
            self._emulator.start(timeout=timeout)
            # Connect before the firmware touches a pin, so every output change is seen.
            self._gpio = self._emulator.open_gpio()
            if not repl:
                return
            with RawRepl.open(self.serial_url) as repl_port:
                repl_port.interrupt(deadline=timeout)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop this board's emulator process (and its drives). Safe to call twice."""
        drives, self._drives = self._drives, []
        for drive in drives:
            drive.stop()
        self.release_gpio()
        self._emulator.stop()

    def __enter__(self) -> EmulatedBoard:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def reset(self) -> None:
        """Hard reset (files stay, main.py runs); driven inputs are re-applied."""
        self._emulator.reset()

    def flash_image(self, image: Path, *, timeout: float = 10.0) -> None:
        """Flash a whole image, as DAPLink does (Emulator.flash_image): files, RAM and
        firmware are replaced, the serial URL stays. The rig's GPIO, if it holds it, is
        connected again to the new process (inputs it drove are not driven again)."""
        had_gpio = self._gpio is not None
        self.release_gpio()
        self._emulator.flash_image(image, timeout=timeout)
        if had_gpio:
            self._gpio = self._emulator.open_gpio()

    def open_drive(self, *, parent: Path | None = None, name: str = "MICROBIT") -> EmulatedDrive:
        """The board's DAPLink drive: a directory (`parent`/`name`, default in a temp
        directory) where a .hex copied in is flashed onto the board (gateway.rig.drive).
        Removed when the board stops."""
        drive = EmulatedDrive(flash=self.flash_image, serial=self.serial_url, parent=parent,
                              name=name)  # fmt: skip
        self._drives.append(drive)
        return drive.start()

    def release_gpio(self) -> None:
        """Drop the rig's qtest connection so another process can connect to `gpio_address`.
        After this, nothing re-applies driven inputs after a reset: that client must."""
        gpio, self._gpio = self._gpio, None
        if gpio is not None:
            gpio.close()

    def repl(self, *, deadline: float = 3.0, boot_catches: int = 3) -> RawRepl:
        """A RawRepl at the friendly prompt, for `with`. If Ctrl-C does not stop main.py (the
        firmware disables it), the board is reset and main.py interrupted as it starts, up
        to `boot_catches` times."""
        repl = RawRepl.open(self.serial_url)
        try:
            try:
                repl.interrupt(deadline=min(deadline, 1.0))
            except ReplTimeout as first:
                self._catch_at_boot(repl, attempts=boot_catches, deadline=deadline, error=first)
        except BaseException:
            repl.close()
            raise
        return repl

    def _catch_at_boot(
        self, repl: RawRepl, *, attempts: int, deadline: float, error: ReplTimeout
    ) -> None:
        for _ in range(attempts):
            self.reset()
            try:
                repl.interrupt_boot(deadline=deadline)
                return
            except ReplTimeout as exc:
                error = exc
        raise error

    def install(
        self, files: Mapping[str, bytes], *, clean: bool = True, reset: bool = True
    ) -> None:
        """Write and verify `files` (board name -> bytes), then reset so main.py runs.
        `clean` removes every other file first."""
        with self.repl() as repl:
            present = set(repl.list_files())
            # No main.py while the set is incomplete: a reset now must not start half of it.
            doomed = present - set(files) if clean else set()
            for name in sorted(doomed | ({"main.py"} & present)):
                repl.remove_file(name)
            for name in sorted(files, key=lambda n: (n == "main.py", n)):
                try:
                    repl.write_file(name, files[name])
                except RemoteError as exc:
                    if "no more storage space" not in str(exc) and "OSError: 28" not in str(exc):
                        raise
                    total = sum(len(data) for data in files.values())
                    raise ReplError(
                        f"board filesystem full writing {name}: {len(files)} files, "
                        f"{total} bytes (micro:bit MicroPython holds about {FS_BYTES})"
                    ) from exc
        if reset:
            self.reset()

    def _after_reset(self) -> None:
        gpio = self._gpio
        if gpio is None:
            return
        try:
            gpio.after_reset()
        except QtestError:
            if not gpio.closed:
                raise
            # released or stopped while the reset was being handled: nothing to restore


class BoardSet:
    """Boards started together: index or iterate them; `with` stops them all."""

    def __init__(self, boards: Sequence[EmulatedBoard]) -> None:
        self._boards = list(boards)

    def __getitem__(self, index: int) -> EmulatedBoard:
        return self._boards[index]

    def __len__(self) -> int:
        return len(self._boards)

    def __iter__(self) -> Iterator[EmulatedBoard]:
        return iter(self._boards)

    def stop(self) -> None:
        for board in self._boards:
            board.stop()

    def __enter__(self) -> BoardSet:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def boot_many(
    n: int,
    *,
    files: Mapping[str, bytes] | None = None,
    firmware: bool = False,
    firmware_hex: Path | None = None,
    timeout: float = 30.0,
) -> BoardSet:
    """Start `n` boards in parallel. Bare MicroPython at its REPL by default, with `files`
    installed if given; `firmware=True` boots the seat image (gateway.image, built or from
    the cache), `firmware_hex` another image, both left running. If any fails, all are
    stopped and the first error is raised."""
    if firmware and firmware_hex is None:
        from gateway.image import build_image  # the image builder is not needed otherwise

        firmware_hex = build_image().path
    boards = BoardSet([EmulatedBoard(firmware_hex=firmware_hex) for _ in range(n)])

    def bring_up(board: EmulatedBoard) -> None:
        board.start(timeout=timeout, repl=firmware_hex is None)
        if files is not None:
            board.install(files)

    try:
        with ThreadPoolExecutor(max_workers=max(1, n), thread_name_prefix="boot") as pool:
            for future in [pool.submit(bring_up, board) for board in boards]:
                future.result()
    except BaseException:
        boards.stop()
        raise
    return boards
