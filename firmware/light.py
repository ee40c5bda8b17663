# Status light (docs/seat.md): the state's colour and blink, then overlays
# on a 2 s cycle: pending change, help requested, link lost.
R, G, B, Y, M, W = 1, 2, 4, 3, 5, 7
# per state: on colour, off colour, period ms, on ms
P = ((0, 0, 1, 0), (G, G, 1, 1), (B, B, 1, 1), (R, 0, 1000, 500),
     (R, R, 1, 1), (Y, 0, 500, 250), (Y, Y, 1, 1))
OVER = (R, Y, 250, 125)
REMIND = (W, 0, 200, 100)


def rgb(s, up, ph, remind):
    t = s.t
    p = P[s.st]
    if s.st == 5:
        if s.over:
            p = OVER
        elif t >= remind and t % remind < 1000:
            p = REMIND
    c = p[0] if t % p[2] < p[3] else p[1]
    if s.pst >= 0 and ph < 200:
        c = B
    if s.help and 1000 <= ph < 1300:
        c = M
    if not up and 1600 <= ph < 1700:
        c = W
    return c
