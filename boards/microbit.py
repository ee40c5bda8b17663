# BBC micro:bit v1 (nRF51822, MicroPython 1.9.2), installed as board.py.
# Inputs are edge-connector pins (the A/B buttons never read in QEMU), all
# active high: the hanger 1 with the headset resting on it, a button 1 while
# pressed. Outputs drive a common-cathode RGB LED.
import microbit
import machine
import random
import micropython
import utime
import ustruct
import gc

NAME = b'microbit'
STORE = ''
PINS = {'hanger': 0, 'ready': 1, 'wrap': 2, 'help': 8, 'answer': 12,
        'red': 13, 'green': 14, 'blue': 15}

# The board id: UICR CUSTOMER[0] and [1], most significant byte first, when
# facilities (or the emulator's rig) programmed them; erased (all ones) they
# leave the chip's own, FICR DEVICEID. Word reads: QEMU answers a byte read
# of UICR with the low byte of its word.
UID = ustruct.pack('>ii', machine.mem32[0x10001080], machine.mem32[0x10001084])
if UID == b'\xff' * 8:
    UID = machine.unique_id()
# A board with no boot count kept (new, or its filesystem erased by flashing
# a whole image) starts from a random one, not 0: a host that knew its last
# boot must not take the new boot's hello for a resend (docs/protocol.md).
BOOT0 = random.getrandbits(24)
now = utime.ticks_ms
diff = utime.ticks_diff
sleep = utime.sleep_ms
reset = machine.reset
mem = gc.mem_free
kbd = micropython.kbd_intr
_in = (microbit.pin0, microbit.pin1, microbit.pin2, microbit.pin8, microbit.pin12)
_out = (microbit.pin13, microbit.pin14, microbit.pin15)
_uart = microbit.uart
_uart.init(115200)
read = _uart.readinto  # None at once when nothing has arrived
kbd(-1)  # from here on a 0x03 byte is data, not Ctrl-C


def inputs():
    return (_in[0].read_digital() | _in[1].read_digital() << 1 |
            _in[2].read_digital() << 2 | _in[3].read_digital() << 3 |
            _in[4].read_digital() << 4)


def light(rgb):
    _out[0].write_digital(rgb & 1)
    _out[1].write_digital((rgb >> 1) & 1)
    _out[2].write_digital((rgb >> 2) & 1)


def write(buf, n):
    # no memoryview on this port: the slice is one allocation per frame
    _uart.write(buf[:n])
