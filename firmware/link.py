# Seat end of the seat link (docs/protocol.md). Numbered frames wait in a
# bounded queue until the host acks them (cumulative ack) and are resent
# go-back-N, one frame per loop pass. Overflow collapses the queue into one
# snapshot and counts the dropped frames: never a silent loss.
import cfg
import tx

CAP = 0x20000000


class Link:
    SIZE = 10  # queued frames
    RTO = 300  # ms before resending; doubles up to RTO_MAX
    RTO_MAX = 3000

    def __init__(s, seat, board, boot, fw, uid):
        s.seat = seat
        s.b = board
        s.boot = boot
        s.fw = fw
        s.uid = uid
        s.q = [0] * (s.SIZE * 8)  # seq, kind, code, st, rs, call, a, b
        s.h = s.n = s.nx = s.seq = s.rx = s.rt = s.hb = s.ms = s.sec = 0
        s.bad = s.drop = s.retx = s.err = s.worst = s.quit = s.rn = 0
        s.rto = s.RTO
        s.up = CAP
        s.tb = bytearray(96)
        s.rb = bytearray(64)
        seat.emit = s.ev
        s.put(66, 0, 0, 0)
        s.put(83, 0, 0, 0)

    def ev(s, code, a, b):
        s.put(69, code, a, b)

    def put(s, k, code, a, b):
        if s.n == s.SIZE:
            s.drop += s.n
            s.n = s.nx = 0
            s.put(83, 0, 0, 0)
        j = (s.h + s.n) % s.SIZE * 8
        s.seq = s.seq % 65535 + 1
        q = s.q
        z = s.seat
        q[j] = s.seq
        q[j + 1] = k
        q[j + 2] = code
        q[j + 3] = z.st
        q[j + 4] = z.rs
        q[j + 5] = z.call
        q[j + 6] = a
        q[j + 7] = b
        s.n += 1

    def ack(s, a):
        q = s.q
        m = 0
        while s.n and (a - q[s.h * 8]) % 65535 < 32768:
            s.h = (s.h + 1) % s.SIZE
            s.n -= 1
            m = 1
            if s.nx:
                s.nx -= 1
        if m:
            s.rto = s.RTO
            s.rt = 0

    def tick(s, dt):
        if s.up < CAP:
            s.up += dt
        s.rt += dt
        s.hb += dt
        s.ms += dt
        while s.ms >= 1000:
            s.ms -= 1000
            s.sec += 1
        if s.hb >= cfg.V[10] * 1000:
            s.hb = 0
            tx.beat(s)
        elif s.nx < s.n:
            tx.send(s, s.nx)
            s.nx += 1
            s.rt = 0
        elif s.n and s.rt >= s.rto:
            s.nx = s.rt = 0
            s.retx += s.n
            s.rto = min(s.rto * 2, s.RTO_MAX)

    def linked(s):
        return s.up < 3000 * cfg.V[10]
