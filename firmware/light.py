# Status light (docs/seat.md): the state's colour and blink, then overlays
# on a 2 s cycle: pending change, a supervisor's message, help requested,
# link lost.
from seat import S, ST, T, HOLD, OVER, PST, HELPING, MSG, MSGT
R, G, B, Y, M, W = 1, 2, 4, 3, 5, 7
# per state: on colour, off colour, period ms, on ms
P = (0, 0, 1, 0, G, G, 1, 1, B, B, 1, 1, R, 0, 1000, 500,
     R, R, 1, 1, Y, 0, 500, 250, Y, Y, 1, 1,
     R, Y, 250, 125, W, 0, 200, 100)
OVER_ROW, REMIND_ROW = 7, 8


def rgb(up, ph, remind):
    t = S[T]
    i = S[ST]
    if i == HOLD:
        if S[OVER]:
            i = OVER_ROW
        elif t >= remind and t % remind < 1000:
            i = REMIND_ROW
    i *= 4
    c = P[i] if t % P[i + 2] < P[i + 3] else P[i + 1]
    if S[PST] >= 0 and ph < 200:
        c = B
    if S[MSG] and 400 <= ph < 900:
        c = S[MSG]
    if S[HELPING] and 1000 <= ph < 1300:
        c = M
    if not up and 1600 <= ph < 1700:
        c = W
    return c


def note(c, s):
    # host frame M, a supervisor's message: colour c flashes over the light
    # for s seconds; 0 seconds ends it. No event: the ack says it is showing.
    if c < 1 or c > 7:
        return 401
    if s > 600:
        return 402
    S[MSG] = c if s else 0
    S[MSGT] = s * 1000
    return 0
