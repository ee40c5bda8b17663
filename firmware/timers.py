# Local timers: ring limit, ACW, hold limit, away on hook, idle logout and
# the READY long press. They run with or without the host link.
import cfg
from seat import CAP, READY, NR, RING, HOLD, ACW, OUT, NOANS, AWAY, RONA, HOLDMAX, HK, TMR, BTN


def tick(s, dt):
    if s.t < CAP:
        s.t += dt
    if s.idle < CAP:
        s.idle += dt
    if s.tp < CAP:
        s.tp += dt
    if s.hook:
        s.oh = 0
    elif s.oh < CAP:
        s.oh += dt
    V = cfg.V
    st = s.st
    t = s.t
    if st == RING:
        if t >= s.rl * s.rms:
            s.miss += 1
            s.emit(RONA, t, s.miss)
            if s.miss >= V[3]:
                s.pst = -1
                s.go(NR, NOANS, TMR)
            else:
                s.end(TMR, READY, 0)
    elif st == ACW:
        if t >= V[4] * 1000:
            s.acw_end(TMR)
    elif st == HOLD:
        if not s.over and t >= V[7] * 1000:
            s.over = 1
            s.emit(HOLDMAX, t, 0)
    elif st == READY:
        a = V[8] * 1000
        if a and s.oh >= a and t >= a:
            s.go(NR, AWAY, HK)
    elif st == NR:
        a = V[9] * 1000
        if a and s.idle >= a:
            s.go(OUT, 0, TMR)
    if s.down >= 0:
        s.down += dt
        if s.down >= V[13]:
            s.down = -2
            s.want(OUT, 0, BTN)
