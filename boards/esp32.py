# ESP32 DevKit (ESP32-WROOM-32, current MicroPython). Installed on the board as board.py.
# Same interface as microbit.py; the link is the UART0 REPL behind the USB bridge.
# Inputs GPIO32/33/25/26/27 have internal pull-downs (GPIO34-39 have none); outputs
# GPIO21/22/23. Avoided: strapping 0/2/5/12/15, flash 6-11, UART0 1/3, PSRAM 16/17.
# Inputs active high (switch to 3V3; hanger 1: headset on it); common-cathode RGB LED.
import gc
import random
import select
import sys
import time

import machine
import micropython
from machine import Pin

NAME = b'esp32'
STORE = ''
PINS = {'hanger': 32, 'ready': 33, 'wrap': 25, 'help': 26, 'answer': 27,
        'red': 21, 'green': 22, 'blue': 23}

_in = tuple(Pin(PINS[k], Pin.IN, Pin.PULL_DOWN)
            for k in ('hanger', 'ready', 'wrap', 'help', 'answer'))
_out = tuple(Pin(PINS[k], Pin.OUT, value=0) for k in ('red', 'green', 'blue'))
_rx = sys.stdin.buffer
_tx = sys.stdout.buffer
_poll = select.poll()
_poll.register(sys.stdin, select.POLLIN)
_b = bytearray(1)
now = time.ticks_ms
diff = time.ticks_diff
sleep = time.sleep_ms
reset = machine.reset
mem = gc.mem_free
kbd = micropython.kbd_intr
UID = machine.unique_id()
BOOT0 = random.getrandbits(24)  # boot count of a board with none kept (loop.boot)
kbd(-1)  # from here on a 0x03 byte is data, not Ctrl-C



def inputs():
    # type: () -> int
    m = 0
    b = 1
    for p in _in:
        if p.value():
            m |= b
        b <<= 1
    return m


def light(rgb):
    # type: (int) -> None
    _out[0].value(rgb & 1)
    _out[1].value((rgb >> 1) & 1)
    _out[2].value((rgb >> 2) & 1)


def read(buf):
    # type: (bytearray) -> int
    # stdin.buffer.readinto blocks until buf is full: one byte per ready poll.
    n = 0
    while n < len(buf) and _poll.poll(0) and _rx.readinto(_b):
        buf[n] = _b[0]
        n += 1
    return n


def write(buf, n):
    # type: (bytearray, int) -> None
    _tx.write(buf, n)  # stream write(buf, max_len): no slice
