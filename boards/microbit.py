# BBC micro:bit v1 (nRF51822, MicroPython 1.9.2). Installed on the board as board.py.
# Inputs use edge-connector pins: the A/B buttons never read in QEMU (no system tick).
# All inputs are active high (1 = off hook / pressed); outputs drive a common-cathode RGB LED.
import microbit
import machine
import micropython
import utime
import gc

NAME = b'microbit'
STORE = ''
PINS = {'hook': 0, 'ready': 1, 'wrap': 2, 'help': 8,
        'red': 13, 'green': 14, 'blue': 15}

_in = (microbit.pin0, microbit.pin1, microbit.pin2, microbit.pin8)
_out = (microbit.pin13, microbit.pin14, microbit.pin15)
_uart = microbit.uart
now = utime.ticks_ms
diff = utime.ticks_diff
sleep = utime.sleep_ms
reset = machine.reset


def init():
    _uart.init(115200)
    micropython.kbd_intr(-1)


def repl():
    micropython.kbd_intr(3)


def inputs():
    return (_in[0].read_digital() | _in[1].read_digital() << 1 |
            _in[2].read_digital() << 2 | _in[3].read_digital() << 3)


def light(rgb):
    _out[0].write_digital(rgb & 1)
    _out[1].write_digital((rgb >> 1) & 1)
    _out[2].write_digital((rgb >> 2) & 1)


def read(buf):
    if _uart.any():
        return _uart.readinto(buf) or 0
    return 0


def write(buf, n):
    # no memoryview on this port: the slice is the one allocation per frame
    _uart.write(buf[:n])


def uid():
    return machine.unique_id()


def mem():
    gc.collect()
    return gc.mem_free()
