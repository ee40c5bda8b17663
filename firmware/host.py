# Commands from the host (docs/protocol.md). do() returns 0 when applied,
# else err * 100 + field: 1 unknown, 2 wrong state, 3 other call,
# 4 out of range, 5 missing field. Nothing changes when it fails.
import cfg
from seat import OUT, READY, NR, RING, TALK, HOLD, SUP, HELP, HOST


def do(s, k, f, n):
    st = s.st
    c = f[1]
    if n < 1 and k != 85:
        return 501
    if k == 79:  # O call [ring_limit ring_ms]: offer
        r = f[2] if n > 1 else cfg.V[1]
        m = f[3] if n > 2 else cfg.V[2]
        if c < 1:
            return 401
        if cfg.bad(1, r):
            return 402
        if cfg.bad(2, m):
            return 403
        if st != READY:
            return 200
        s.call = c
        s.rl = r
        s.rms = m
        s.go(RING, 0, HOST)
    elif k == 67 or k == 75 or k == 80 or k == 76:
        if c != s.call or c < 1:
            if k == 75 and st <= NR and st > OUT and c > 0:
                s.call = c  # K: an outbound call connected
                s.go(TALK, 0, HOST)
                return 0
            return 301
        if k == 67:  # C call: cancel
            if st != RING:
                return 200
            s.end(HOST, READY, 0)
        elif k == 75:  # K call: connected
            if st == RING:
                s.answer(HOST)
        elif k == 80:  # P call on: hold / unhold
            on = f[2] if n > 1 else 1
            if on and st == TALK:
                s.go(HOLD, 0, HOST)
            elif not on and st == HOLD:
                s.go(TALK, 0, HOST)
            elif st != TALK and st != HOLD:
                return 200
        elif st == TALK or st == HOLD:  # L call: released
            s.release(HOST)
        else:
            return 200
    elif k == 84:  # T state reason: set state
        r = f[2] if n > 1 else 0
        if c > NR:
            return 401
        if c != NR:
            r = 0
        elif r < 1 or r > SUP:
            return 402
        s.want(c, r, HOST)
    elif k == 71:  # G key value ...: settings, all or nothing
        if n & 1:
            return 500
        i = 1
        while i < n:
            if cfg.bad(f[i], f[i + 1]):
                return 400 + f[i] if 0 < f[i] < 100 else 400
            i += 2
        i = 1
        while i < n:
            cfg.V[f[i]] = f[i + 1]
            i += 2
    elif k == 85:  # U on: help flag (a supervisor answers it)
        s.help = 1 if n > 0 and c else 0
        s.emit(HELP, s.help, 0)
    else:
        return 100
    return 0
