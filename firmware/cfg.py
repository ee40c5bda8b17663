# Seat settings, indexed by their key in the seat protocol's G frame.
# Defaults come from the seeds; docs/seat.md names each key and its source.
RING_LIMIT, RING_MS, MISS_LIMIT, ACW_S, ACW_STAY_NR, HOLD_REMIND_S = 1, 2, 3, 4, 5, 6
HOLD_LIMIT_S, AWAY_S, IDLE_S, HEARTBEAT_S, DEBOUNCE_MS, STEP_MS, LONG_MS = 7, 8, 9, 10, 11, 12, 13
AUTO_ANSWER_MS = 14
V = [0, 3, 5000, 1, 60, 0, 15, 30, 10, 1800, 5, 30, 2000, 3000, 0]
LO = (0, 1, 1000, 1, 0, 0, 5, 5, 0, 0, 1, 0, 300, 1000, 0)
HI = (0, 10, 10000, 10, 600, 1, 120, 600, 600, 86400, 60, 200, 5000, 10000, 10000)


def bad(k, v):
    return k < 1 or k >= len(V) or v < LO[k] or v > HI[k]


def apply(f, n):
    # a G frame's key/value pairs f[1..n]: all or nothing; the error's field is the key
    if n & 1:
        return 500
    i = 1
    while i < n:
        if bad(f[i], f[i + 1]):
            return 400 + (f[i] if f[i] < 100 else 0)
        i += 2
    i = 1
    while i < n:
        V[f[i]] = f[i + 1]
        i += 2
    return 0
