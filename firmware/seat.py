# Seat state machine: agent state, the call at the desk and what ends it.
# No pins, no clock, no class: state is the int list S (slots named below,
# inlined as literals on the board, where every object costs heap), events
# leave through emit(code, a, b), set by the link.
import cfg
from cfg import ACW_S, ACW_STAY_NR

OUT, READY, NR, RING, TALK, HOLD, ACW = 0, 1, 2, 3, 4, 5, 6
# Not Ready reasons: 1-6 from the button (break .. coaching), then these
NOANS, AWAY, WRAP, SUP = 7, 8, 9, 10
STATE, ANSWER, RONA, RELEASE, HOLDMAX, HELP, PEND, HOOK, REFUSED = 1, 2, 3, 4, 5, 6, 7, 8, 9
# why a state changed: READY/WRAP, the hanger, a timer, the host, the call button, auto-answer
BTN, HK, TMR, HOST, KEY, AUTO = 1, 2, 3, 4, 5, 6
# slots of S; T .. ONHOOK are the ms counters timers.tick advances
ST, RS, CALL, T, IDLE, SINCE, ONHOOK, MISS = 0, 1, 2, 3, 4, 5, 6, 7
HELPING, OFFHOOK, OVER, RLIM, RMS, DOWN, PST, PRS = 8, 9, 10, 11, 12, 13, 14, 15
HELD, LOCK = 16, 17  # debounced input levels; ms the inputs stay locked after an edge
MSG, MSGT = 18, 19  # a supervisor's message: its colour, ms it has left
# is an agent signed in here (host N): -1 not told since boot, 0 nobody, 1 someone;
# the call this seat released last, so a late host L for it is not an error
AGT, LAST = 20, 21
CAP = 0x20000000  # counters stop here: small ints never allocate

S = [0] * 22
S[SINCE] = CAP
S[DOWN] = S[PST] = S[AGT] = -1
emit = None


def go(st, rs, why):
    S[ST] = st
    S[RS] = rs
    S[T] = S[IDLE] = S[OVER] = 0
    if st < RING:
        S[CALL] = 0
    emit(STATE, why, 0)


def want(st, rs, why):
    # asked for during a call: pending until the call ends
    if S[ST] >= RING:
        S[PST] = st
        S[PRS] = rs
        emit(PEND, st, rs)
    else:
        go(st, rs, why)


def end(why, st, rs):
    # the call is over; st < 0: after ACW, where the setting decides
    if st < 0:
        st = READY
        rs = 0
        if cfg.V[ACW_STAY_NR]:
            st = NR
            rs = WRAP
    if S[PST] >= 0:
        st = S[PST]
        rs = S[PRS]
        S[PST] = -1
    go(st, rs, why)


def answer(why):
    S[MISS] = 0
    emit(ANSWER, S[T], 0)
    go(TALK, 0, why)


def release(why):
    S[LAST] = S[CALL]
    emit(RELEASE, why, 0)
    if cfg.V[ACW_S]:
        go(ACW, 0, why)
    else:
        end(why, -1, 0)
