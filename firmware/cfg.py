# Seat settings, indexed by their key in the seat protocol's G frame.
# Defaults come from the seeds; docs/seat.md names each key and its source.
# 1 ring_limit, 2 ring_ms, 3 miss_limit, 4 acw_s, 5 acw_stay_nr,
# 6 hold_remind_s, 7 hold_limit_s, 8 away_s, 9 idle_logout_s,
# 10 heartbeat_s, 11 debounce_ms, 12 step_ms, 13 long_press_ms
V = [0, 3, 5000, 1, 60, 0, 15, 30, 10, 1800, 5, 30, 2000, 3000]
LO = (0, 1, 1000, 1, 0, 0, 5, 5, 0, 0, 1, 0, 300, 1000)
HI = (0, 10, 10000, 10, 600, 1, 120, 600, 600, 86400, 60, 200, 5000, 10000)


def bad(k, v):
    return k < 1 or k >= len(V) or v < LO[k] or v > HI[k]
