# Seat state machine: agent state, the call at the desk and local timers.
# No pins and no clock: tick(dt) advances time and emit(code, a, b) reports,
# so it runs unchanged on the board, in MicroPython and in CPython.
import cfg

OUT, READY, NR, RING, TALK, HOLD, ACW = 0, 1, 2, 3, 4, 5, 6
# Not Ready reasons 1-6 come from the button (break .. coaching)
NOANS, AWAY, WRAP, SUP = 7, 8, 9, 10
STATE, ANSWER, RONA, RELEASE, HOLDMAX, HELP, PEND, HOOK = 1, 2, 3, 4, 5, 6, 7, 8
BTN, HK, TMR, HOST = 1, 2, 3, 4
CAP = 0x20000000  # counters stop here: small ints never allocate


class Seat:
    def __init__(s):
        s.emit = None
        s.st = s.rs = s.call = s.t = s.miss = s.help = s.hook = 0
        s.idle = s.oh = s.over = s.rl = s.rms = 0
        s.tp = CAP
        s.down = s.pst = -1
        s.prs = 0

    def go(s, st, rs, why):
        s.st = st
        s.rs = rs
        s.t = s.idle = s.over = 0
        if st < RING:
            s.call = 0
        s.emit(STATE, why, 0)

    def want(s, st, rs, why):
        # A change asked for during a call waits for the call to end.
        if s.st >= RING:
            s.pst = st
            s.prs = rs
            s.emit(PEND, st, rs)
        else:
            s.go(st, rs, why)

    def end(s, why, st, rs):
        if s.pst >= 0:
            st = s.pst
            rs = s.prs
            s.pst = -1
        s.go(st, rs, why)

    def acw_end(s, why):
        if cfg.V[5]:
            s.end(why, NR, WRAP)
        else:
            s.end(why, READY, 0)

    def answer(s, why):
        s.miss = 0
        s.emit(ANSWER, s.t, 0)
        s.go(TALK, 0, why)

    def release(s, why):
        s.emit(RELEASE, why, 0)
        if cfg.V[4]:
            s.go(ACW, 0, why)
        else:
            s.acw_end(why)
