# A board for cross-VM runs (MicroPython and CPython alike): the clock moves 5 ms per sleep,
# inputs and host bytes come from SCRIPT at their times, and the run ends at END by raising
# Stop, a BaseException the loop does not catch.
NAME = b'script'
STORE = ''
BOOT0 = 0  # no boot count kept: boot 1, as on both interpreters alike
UID = b'\x0f\xa0\x5e'
PINS = {}
MS = [0]
IN = [0]
RX = [b'']
TXL = []
LIGHTS = []
SCRIPT = []  # [ms, input levels or -1, host bytes], in time order
END = [0]


class Stop(BaseException):
    pass


def now():
    return MS[0] & 0x3FFFFFFF


def diff(a, b):
    return ((a - b + 0x20000000) & 0x3FFFFFFF) - 0x20000000


def sleep(ms):
    MS[0] += ms
    while SCRIPT and SCRIPT[0][0] <= MS[0]:
        step = SCRIPT.pop(0)
        if step[1] >= 0:
            IN[0] = step[1]
        RX[0] = RX[0] + step[2]
    if MS[0] >= END[0]:
        raise Stop()


def reset():
    pass


def mem():
    return 6000


def kbd(x):
    pass


def inputs():
    return IN[0]


def light(c):
    LIGHTS.append([MS[0], c])


def read(buf):
    n = min(len(buf), len(RX[0]))
    if not n:
        return 0
    for i in range(n):
        buf[i] = RX[0][i]
    RX[0] = RX[0][n:]
    return n


def write(buf, n):
    TXL.append([MS[0], bytes(buf[:n]).decode()])
