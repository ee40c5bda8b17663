# What the agent does at the desk: headset hook and the READY, WRAP and HELP
# buttons. READY steps through Not Ready reasons while pressed again within
# step_ms; a long press logs out. Changes asked for during a call are pending.
import cfg
from seat import OUT, READY, NR, RING, TALK, ACW, HOOK, HELP, PEND, HK, BTN


def hook(s, off):
    s.hook = off
    s.idle = 0
    s.emit(HOOK, off, 0)
    if off:
        if s.st == RING:
            s.answer(HK)
    elif s.st == TALK:
        s.release(HK)


def ready(s, down):
    s.idle = 0
    if down:
        s.down = 0
        return
    held = s.down
    s.down = -1
    if held < 0:
        return
    step = s.tp < cfg.V[12]
    s.tp = 0
    st = s.st
    if st >= RING:
        if s.pst == NR and step and 0 < s.prs < 7:
            s.want(NR, s.prs % 6 + 1, BTN)
        elif s.pst < 0:
            s.want(NR, 1, BTN)
        else:
            s.pst = -1
            s.emit(PEND, -1, 0)
    elif st == READY:
        s.go(NR, 1, BTN)
    elif st == NR and step and 0 < s.rs < 7:
        s.go(NR, s.rs % 6 + 1, BTN)
    else:
        s.go(READY, 0, BTN)


def wrap(s):
    s.idle = 0
    if s.st == ACW:
        s.acw_end(BTN)


def help(s):
    s.idle = 0
    s.help ^= 1
    s.emit(HELP, s.help, 0)
