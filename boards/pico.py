# Raspberry Pi Pico (RP2040, current MicroPython). Installed on the board as board.py.
# Same interface as microbit.py; the link is the USB CDC REPL (sys.stdin/stdout).
# Pins (GPn = header pin): hanger GP2=4, ready GP3=5, wrap GP4=6, help GP5=7, answer GP6=9,
# red GP13=17, green GP14=19, blue GP15=20. UART0 (GP0/GP1) and the LED (GP25) stay free.
# Inputs active high (switch to 3V3, pull-down; hanger 1: headset on it); RGB LED.
import gc
import random
import select
import sys
import time

import machine
import micropython
from machine import Pin

NAME = b'pico'
STORE = ''
PINS = {'hanger': 2, 'ready': 3, 'wrap': 4, 'help': 5, 'answer': 6,
        'red': 13, 'green': 14, 'blue': 15}

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
