# The seat's main loop, the same on every board and under CPython: inputs,
# host frames, timers, link, then the light. Boot is its own function: the
# micro:bit compiles each function on its own, in a few KB of heap.
import gc
import board
import cfg
import seat
import timers
import agent
import link
import rx
import light
import tx
from tx import L, BOOT, WORST, QUIT, ERR, UP, HELLO, SNAP
from cfg import HOLD_REMIND_S, HEARTBEAT_S


def boot():
    # count the boot, name the board, say hello and send the state; with no
    # count kept (or a damaged one) the board's own start, random on a board
    try:
        with open(board.STORE + 'boot') as f:
            n = int(f.read())
    except Exception:
        n = board.BOOT0
    with open(board.STORE + 'boot', 'w') as f:
        f.write(str(n + 1))
    L[BOOT] = n + 1
    u = board.UID
    h = bytearray(2 * len(u))
    for i in range(2 * len(u)):
        h[i] = tx.frame.HEX[(u[i // 2] >> (4 - 4 * (i & 1))) & 15]
    tx.UID = h
    seat.emit = link.enq
    agent.start(board.inputs())
    # a line break first: the host may hold half a line from before the reset, and a
    # UART's start-up glitch (QEMU sends a NUL) must not join the hello's line
    board.write(b'\n', 1)
    link.enq(0, 0, 0, HELLO)
    link.enq(0, 0, 0, SNAP)


def run():
    boot()
    ib = bytearray(16)
    last = board.now()
    ph = 0
    c = -1
    gc.collect()
    while not L[QUIT]:
        t = board.now()
        dt = board.diff(t, last)
        last = t
        try:
            if dt > L[WORST]:
                L[WORST] = dt
            ph = (ph + dt) % 2000
            agent.poll(dt, board.inputs())
            n = board.read(ib)
            if n:
                rx.feed(ib, n)
            timers.tick(dt)
            link.tick(dt)
            r = light.rgb(L[UP] < 3000 * cfg.V[HEARTBEAT_S], ph, cfg.V[HOLD_REMIND_S] * 1000)
            if r != c:
                board.light(r)
                c = r
        except Exception:
            L[ERR] += 1
        board.sleep(5)
    board.light(0)
    board.kbd(3)
