# What the agent does at the desk: headset hanger, call button, READY, WRAP
# and HELP. READY steps through Not Ready reasons when pressed again within
# step_ms and logs out on a long press; during a call its change is pending.
import cfg
import seat
from seat import S, IDLE, OFFHOOK, ST, RING, TALK, HK, DOWN, SINCE, PST, PRS, NR, OUT
from seat import BTN, PEND, READY, RS, ACW, HELPING, HELP, HOOK, HELD, LOCK, KEY
from seat import AGT, REFUSED, MSG, MSGT
from cfg import STEP_MS, DEBOUNCE_MS
# The board reads the hanger as 1 with the headset resting on it; poll flips
# it, so inside bit 0 is 1 with the headset lifted (worn) and all-zero levels
# are the desk at rest. Then a board that boots with nothing wired never
# counts an agent as away.
IN_HANGER, IN_READY, IN_WRAP, IN_HELP, IN_ANSWER = 1, 2, 4, 8, 16
REFUSED_MS = 4000  # how long a refused login flashes red


def start(r):
    # the levels at boot are where the desk is, not edges: no event, no answer
    r ^= IN_HANGER
    S[HELD] = r
    S[OFFHOOK] = r & IN_HANGER


def poll(dt, r):
    # lockout debounce: an edge is taken at once, then inputs rest for debounce_ms
    r ^= IN_HANGER
    if S[LOCK] > 0:
        S[LOCK] -= dt
    elif r != S[HELD]:
        x = r ^ S[HELD]
        S[HELD] = r  # taken before handling: a failed edge is not replayed
        S[LOCK] = cfg.V[DEBOUNCE_MS]
        edge(x, r)


def edge(x, r):
    # x: inputs that changed, r: their new levels (debounced)
    S[IDLE] = 0
    if x & IN_HANGER:
        S[OFFHOOK] = r & IN_HANGER
        seat.emit(HOOK, r & IN_HANGER, 0)
        if r & IN_HANGER and S[ST] == RING:
            seat.answer(HK)
        elif not r & IN_HANGER and S[ST] == TALK:
            seat.release(HK)  # on hold the agent may hang it up and step away
    if x & r & IN_ANSWER:
        if S[ST] == RING:
            seat.answer(KEY)
        elif S[ST] == TALK:
            seat.release(KEY)
    if x & IN_READY:
        if r & IN_READY:
            S[DOWN] = 0
        elif S[DOWN] >= 0:
            S[DOWN] = -1
            ready()
        else:
            S[DOWN] = -1
    if x & r & IN_WRAP and S[ST] == ACW:
        seat.end(BTN, -1, 0)
    if x & r & IN_HELP:
        S[HELPING] ^= 1
        seat.emit(HELP, S[HELPING], 0)


def ready():
    # READY released after a short press: step the reason if pressed again soon
    st = S[ST]
    step = S[SINCE] < cfg.V[STEP_MS]
    S[SINCE] = 0
    if st >= RING:
        if S[PST] == NR and step and 0 < S[PRS] < 7:
            seat.want(NR, S[PRS] % 6 + 1, BTN)
        elif S[PST] < 0:
            seat.want(NR, 1, BTN)
        else:
            S[PST] = -1
            seat.emit(PEND, -1, 0)
    elif st == READY:
        seat.go(NR, 1, BTN)
    elif st == NR and step and 0 < S[RS] < 7:
        seat.go(NR, S[RS] % 6 + 1, BTN)
    elif st == OUT and not S[AGT]:
        refuse()
    else:
        seat.go(READY, 0, BTN)


def refuse():
    # nobody signed in at this seat: the login is refused and the light says
    # so (red over the dark light) until the agent signs in at the desk's page
    seat.emit(REFUSED, 1, 0)
    S[MSG] = 1
    S[MSGT] = REFUSED_MS
