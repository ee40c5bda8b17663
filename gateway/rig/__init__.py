"""Emulated-board rig: seat boards in QEMU, driven and watched from the host.

    with boot_many(2, firmware=True) as boards:
        t_in = boards[0].gpio.lift()
        t_out = boards[0].gpio.wait_light(GREEN, since_ns=t_in)

See gateway/rig/README.md for what the emulator does and does not do.
"""

from gateway.rig.board import BoardSet, EmulatedBoard, boot_many
from gateway.rig.emulator import Emulator, EmulatorError
from gateway.rig.firmware import firmware_files
from gateway.rig.gpio import BLUE, GREEN, RED, Gpio, PinPort
from gateway.rig.pins import BoardPins, microbit_pins
from gateway.rig.qemu import QemuMicrobit
from gateway.rig.rawrepl import RawRepl, RemoteError, ReplError, ReplTimeout, VerifyError

__all__ = [
    "BLUE",
    "GREEN",
    "RED",
    "BoardPins",
    "BoardSet",
    "EmulatedBoard",
    "Emulator",
    "EmulatorError",
    "Gpio",
    "PinPort",
    "QemuMicrobit",
    "RawRepl",
    "RemoteError",
    "ReplError",
    "ReplTimeout",
    "VerifyError",
    "boot_many",
    "firmware_files",
    "microbit_pins",
]
