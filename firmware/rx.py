# Host frames in: lines gathered into the link's receive buffer, checked,
# taken in order (a Q frame resyncs), acked, then applied.
import frame
import host
import tx

MAGIC = 24231  # Z frame: leave the firmware for the REPL (flashing)


def feed(l, ib, cnt):
    i = 0
    while i < cnt:
        c = ib[i]
        i += 1
        if c == 10:
            if l.rn:
                if l.rn < 0:
                    l.bad += 1  # oversized: dropped whole
                else:
                    line(l)
            l.rn = 0
        elif l.rn >= 0:
            if l.rn < 64:
                l.rb[l.rn] = c
                l.rn += 1
            else:
                l.rn = -1


def line(l):
    k = frame.parse(l.rb, l.rn)
    F = frame.F
    q = F[0]
    if not k or (k != 65 and k != 73 and not q):
        l.bad += 1
        return
    l.up = 0
    if k == 65:  # A seq: cumulative ack
        if frame.N:
            l.ack(F[1])
        return
    if k == 73:  # I: ping, answered by a heartbeat
        l.hb = 0x20000000
        return
    if k != 81 and l.rx and q != l.rx:
        tx.ack(l, (l.rx - 2) % 65535 + 1)  # resent or early: ack the last
        return
    l.rx = q % 65535 + 1
    tx.ack(l, q)
    if k == 81:  # Q: resync and snapshot
        l.put(83, 0, 0, 0)
    elif k == 90 and frame.N and F[1] == MAGIC:
        l.quit = 1
    else:
        e = host.do(l.seat, k, F, frame.N)
        if e:
            l.put(88, q, e // 100, e % 100)
