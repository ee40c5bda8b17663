# Host frames in: bytes gathered into lines, checked, taken in order (a Q
# frame resyncs the sequence), acked, then applied.
import frame
import host
import link
import tx
from tx import L, RN, BAD, UP, HB, RXSEQ, QUIT, SNAP, REJECT, NEXT, RETX, RT, RTO
from tx import COUNT, SIZE
from link import RTO0
from seat import CAP
ACK, PING, SYNC, EXIT = 65, 73, 81, 90
MAGIC = 24231  # Z frame: leave the firmware for the REPL (reflashing)
RB = bytearray(64)


def feed(ib, cnt):
    for i in range(cnt):
        c = ib[i]
        n = L[RN]
        if c == 10:
            L[RN] = 0
            if n < 0:
                L[BAD] += 1  # oversized: dropped whole
            elif n > 1 or (n and RB[0] != 13):  # a blank line, CR LF too, is skipped
                line(n)
        elif n >= 0:
            if n < 64:
                RB[n] = c
                L[RN] = n + 1
            else:
                L[RN] = -1


def line(n):
    k = frame.parse(RB, n)
    F = frame.F
    q = F[0]
    if not k or (k != ACK and k != PING and not q):
        L[BAD] += 1
        return
    L[UP] = 0
    if k == ACK:
        if frame.N:
            link.ack(F[1])
    elif k == PING:
        L[HB] = CAP
    elif k != SYNC and L[RXSEQ] and q != L[RXSEQ]:
        tx.send(-2, (L[RXSEQ] - 2) % 65535 + 1)  # resent or early: ack the last
    else:
        L[RXSEQ] = q % 65535 + 1
        tx.send(-2, q)
        if k == SYNC:
            # the host asks after a gap: resend from the oldest unacked frame now, not
            # after a quiet spell that new frames may never leave
            L[RETX] += L[NEXT]
            L[NEXT] = L[RT] = 0
            L[RTO] = RTO0  # the line works: no backed-off wait for the resend
            # a snapshot queued and not yet acked is rendered afresh when resent;
            # a second one, or one that would collapse a full queue, would eat
            # the room the resend needs
            if L[COUNT] < SIZE and not link.has(SNAP):
                link.enq(0, 0, 0, SNAP)
        elif k == EXIT and frame.N and F[1] == MAGIC:
            L[QUIT] = 1
        else:
            e = host.do(k, F, frame.N)
            if e:
                link.enq(q, e // 100, e % 100, REJECT)
