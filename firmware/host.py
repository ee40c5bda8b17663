# Host commands (docs/protocol.md), fields f[1..n]: 0, or err * 100 + field;
# a failure changes nothing. Small functions: each compiles alone.
import cfg
import seat
import light
from seat import S, ST, CALL, READY, NR, RING, TALK, HOLD, RLIM, RMS, SUP, HELPING
from seat import HELP, HOST, OUT, AGT, LAST
from cfg import RING_LIMIT, RING_MS
OFFER, CANCEL, CONNECTED, HOLDCMD = 79, 67, 75, 80
RELEASED, SETSTATE, SETTINGS, HELPCMD, MESSAGE, AGENT = 76, 84, 71, 85, 77, 78


def do(k, f, n):
    c = f[1] if n else 0
    if k == OFFER or k == SETSTATE or k == SETTINGS or k == HELPCMD:
        if n < 1:
            return 501
        if k == OFFER:
            return offer(c, f, n)
        if k == SETSTATE:
            return state(c, f[2] if n > 1 else 0)
        if k == SETTINGS:
            return cfg.apply(f, n)
        S[HELPING] = 1 if c else 0  # 0: a supervisor answered
        seat.emit(HELP, S[HELPING], 0)
        return 0
    if k == CANCEL or k == CONNECTED or k == HOLDCMD or k == RELEASED:
        if n < 1:
            return 501
        return call(k, c, f[2] if n > 1 else 1)
    if k == MESSAGE:
        return light.note(c, f[2]) if n > 1 else 501 + n
    if k == AGENT:
        return agent(c) if n else 501
    return 100


def offer(c, f, n):
    r = f[2] if n > 1 else cfg.V[RING_LIMIT]
    m = f[3] if n > 2 else cfg.V[RING_MS]
    if c < 1:
        return 401
    if cfg.bad(RING_LIMIT, r):
        return 402
    if cfg.bad(RING_MS, m):
        return 403
    if S[ST] != READY:
        return 200
    S[CALL] = c
    S[RLIM] = r
    S[RMS] = m
    seat.go(RING, 0, HOST)
    return 0


def call(k, c, on):
    # cancel, connected, hold (on: 1 hold, 0 unhold), released of call c
    st = S[ST]
    if k == CONNECTED and st == OUT:
        return 200  # nobody to connect: the seat is logged out
    if k == RELEASED and c > 0 and c == S[LAST] and not (c == S[CALL] and TALK <= st <= HOLD):
        return 600  # released here already (the agent hung up first): the host's aim holds
    if k == CONNECTED and READY <= st <= NR and c > 0:
        S[CALL] = c  # outbound: a call the seat did not ring for
        seat.go(TALK, 0, HOST)
    elif c != S[CALL] or c < 1:
        return 301
    elif k == CANCEL and st == RING:
        seat.end(HOST, READY, 0)
    elif k == CONNECTED and st >= RING:
        if st == RING:
            seat.answer(HOST)
    elif k == HOLDCMD and (st == TALK or st == HOLD):
        if on and st == TALK:
            seat.go(HOLD, 0, HOST)
        elif not on and st == HOLD:
            seat.go(TALK, 0, HOST)
    elif k == RELEASED and (st == TALK or st == HOLD):
        seat.release(HOST)
    else:
        return 200
    return 0


def state(c, r):
    if c > NR:
        return 401
    if c != NR:
        r = 0
    elif r < 1 or r > SUP:
        return 402
    seat.want(c, r, HOST)
    return 0


def agent(c):
    # N: is an agent signed in here (1) or nobody (0); nobody logs the seat out
    # (pending during a call), and its own login is refused until someone is
    if c < 0 or c > 1:
        return 401
    S[AGT] = c
    if not c and S[ST] != OUT:
        seat.want(OUT, 0, HOST)
    return 0
