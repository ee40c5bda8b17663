# The seat's main loop, the same on every board and under CPython: inputs
# with lockout debounce, host frames, timers, link, then the light.
import gc
import cfg
import seat
import timers
import agent
import link
import rx
import light
FW = b'0.1.0'



def boots(board):
    n = 0
    try:
        with open(board.STORE + 'boot') as f:
            n = int(f.read())
    except Exception:
        pass
    with open(board.STORE + 'boot', 'w') as f:
        f.write(str(n + 1))
    return n + 1


def hexid(u):
    h = bytearray(len(u) * 2)
    for i in range(len(u)):
        h[2 * i] = b'0123456789abcdef'[u[i] >> 4]
        h[2 * i + 1] = b'0123456789abcdef'[u[i] & 15]
    return bytes(h)


def run(board):
    s = seat.Seat()
    l = link.Link(s, board, boots(board), FW, hexid(board.uid()))
    ib = bytearray(16)
    last = board.now()
    st = board.inputs()
    lock = ph = 0
    c = -1
    if st & 1:
        agent.hook(s, 1)
    gc.collect()
    while not l.quit:
        t = board.now()
        dt = board.diff(t, last)
        last = t
        try:
            if dt > l.worst:
                l.worst = dt
            ph = (ph + dt) % 2000
            r = board.inputs()
            if lock > 0:
                lock -= dt
            elif r != st:
                x = r ^ st
                st = r
                lock = cfg.V[11]
                if x & 1:
                    agent.hook(s, r & 1)
                if x & 2:
                    agent.ready(s, r & 2)
                if x & 4 and r & 4:
                    agent.wrap(s)
                if x & 8 and r & 8:
                    agent.help(s)
            n = board.read(ib)
            if n:
                rx.feed(l, ib, n)
            timers.tick(s, dt)
            l.tick(dt)
            r = light.rgb(s, l.linked(), ph, cfg.V[6] * 1000)
            if r != c:
                board.light(r)
                c = r
        except Exception:
            l.err += 1
        board.sleep(5)
    board.light(0)
    board.repl()

