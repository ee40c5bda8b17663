# Renders the seat's frames into the link's transmit buffer.
import frame


def f(b, p, v):
    b[p] = 32
    return frame.num(b, p + 1, v)


def head(l, seq, k):
    b = l.tb
    p = frame.num(b, 0, seq)
    b[p] = 32
    b[p + 1] = k
    return p + 2


def out(l, p):
    l.b.write(l.tb, frame.close(l.tb, p))


def send(l, i):
    q = l.q
    j = (l.h + i) % l.SIZE * 8
    k = q[j + 1]
    b = l.tb
    p = head(l, q[j], k)
    z = l.seat
    if k == 69:  # E code state reason call a b
        for x in range(2, 8):
            p = f(b, p, q[j + x])
    elif k == 88:  # X command-seq err field
        p = f(b, p, q[j + 2])
        p = f(b, p, q[j + 6])
        p = f(b, p, q[j + 7])
    elif k == 83:  # S: rendered now, so a resent snapshot is current
        for v in (z.st, z.rs, z.call, z.t // 1000,
                  z.help | z.hook << 1 | z.over << 2, z.pst, z.prs, z.miss,
                  l.drop):
            p = f(b, p, v)
    else:  # B protocol boot fw uid board
        p = f(b, p, 1)
        p = f(b, p, l.boot)
        for t in (l.fw, l.uid, l.b.NAME):
            b[p] = 32
            p = frame.text(b, p + 1, t)
    out(l, p)


def ack(l, seq):
    out(l, f(l.tb, head(l, 0, 65), seq))


def beat(l):
    b = l.tb
    p = f(b, head(l, 0, 72), l.sec)
    p = f(b, p, l.b.mem())
    p = f(b, p, l.worst)
    p = f(b, p, l.bad)
    p = f(b, p, l.drop)
    p = f(b, p, l.n)
    p = f(b, p, l.retx)
    p = f(b, p, l.err)
    b[p] = 32
    out(l, frame.text(b, p + 1, l.fw))
    l.worst = 0
