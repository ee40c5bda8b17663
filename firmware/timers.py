# Local timers: auto-answer, ring limit, ACW, hold limit, away on the hanger,
# idle logout and the READY long press. They run with or without the host link.
import cfg
import seat
from seat import S, CAP, T, IDLE, OFFHOOK, ONHOOK, ST, RING, RLIM, RMS, MISS
from seat import RONA, NR, NOANS, PST, TMR, READY, ACW, HOLD, OVER, HOLDMAX, AWAY, HK
from seat import OUT, DOWN, BTN, PEND, MSG, MSGT, AUTO
from cfg import MISS_LIMIT, ACW_S, HOLD_LIMIT_S, AWAY_S, IDLE_S, LONG_MS, AUTO_ANSWER_MS


def tick(dt):
    for i in range(T, ONHOOK + 1):
        if S[i] < CAP:
            S[i] += dt
    if S[OFFHOOK]:
        S[ONHOOK] = 0
    V = cfg.V
    st = S[ST]
    t = S[T]
    if st == RING:
        a = V[AUTO_ANSWER_MS]
        if a and S[OFFHOOK] and t >= a:  # only with the headset on: it answers
            seat.answer(AUTO)
        elif t >= S[RLIM] * S[RMS]:
            S[MISS] += 1
            seat.emit(RONA, t, S[MISS])
            if S[MISS] >= V[MISS_LIMIT]:
                if S[PST] >= 0:  # Not Ready, no answer overrides it: say so
                    S[PST] = -1
                    seat.emit(PEND, -1, 0)
                seat.go(NR, NOANS, TMR)
            else:
                seat.end(TMR, READY, 0)
    elif st == ACW:
        if t >= V[ACW_S] * 1000:
            seat.end(TMR, -1, 0)
    elif st == HOLD:
        if not S[OVER] and t >= V[HOLD_LIMIT_S] * 1000:
            S[OVER] = 1
            seat.emit(HOLDMAX, t, 0)
    else:
        idle(st, t)
    if S[MSG]:
        S[MSGT] -= dt
        if S[MSGT] <= 0:
            S[MSG] = 0
    if S[DOWN] >= 0:
        S[DOWN] += dt
        if S[DOWN] >= V[LONG_MS]:
            S[DOWN] = -2
            seat.want(OUT, 0, BTN)


def idle(st, t):
    # no call: away with the headset on the hanger (Ready), idle logout (Not Ready)
    if st == READY:
        a = cfg.V[AWAY_S] * 1000
        if a and S[ONHOOK] >= a and t >= a:
            seat.go(NR, AWAY, HK)
    elif st == NR:
        a = cfg.V[IDLE_S] * 1000
        if a and S[IDLE] >= a:
            seat.go(OUT, 0, TMR)
