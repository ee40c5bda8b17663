# Seat end of the seat link (docs/protocol.md). Numbered frames wait in a
# bounded queue until the host acks them (cumulative ack) and are resent
# go-back-N, one frame per loop pass. A full queue collapses into one
# snapshot and the dropped frames are counted: never a silent loss.
import cfg
import tx
from seat import S, ST, RS, CALL, CAP
from tx import L, Q, SIZE, HEAD, COUNT, NEXT, SEQ, RT, HB, MS, SEC, RETX, RTO, UP, DROP
from tx import EVENT, SNAP
from cfg import HEARTBEAT_S
RTO0, RTO_MAX = 300, 3000  # ms before resending; doubles up to RTO_MAX

L[RTO] = RTO0
L[UP] = CAP


def enq(code, a, b, k=EVENT):
    # a: for a snapshot, the first seq of the frames dropped just before it
    # (0: none). A host must not take any other snapshot past a gap as the
    # end of a collapse; one at the head hands on where the loss began.
    if L[COUNT] == SIZE:
        j = L[HEAD] * 8
        L[DROP] += SIZE
        L[COUNT] = L[NEXT] = 0
        enq(0, Q[j + 6] if Q[j + 1] == SNAP and Q[j + 6] else Q[j], 0, SNAP)
    j = (L[HEAD] + L[COUNT]) % SIZE * 8
    L[SEQ] = L[SEQ] % 65535 + 1
    Q[j] = L[SEQ]
    Q[j + 1] = k
    Q[j + 2] = code
    Q[j + 3] = S[ST]
    Q[j + 4] = S[RS]
    Q[j + 5] = S[CALL]
    Q[j + 6] = a
    Q[j + 7] = b
    L[COUNT] += 1


def has(k):
    for i in range(L[COUNT]):
        if Q[(L[HEAD] + i) % SIZE * 8 + 1] == k:
            return 1
    return 0


def ack(a):
    # an ack beyond the newest frame sent (stale host state) acks nothing
    while L[COUNT] and (a - Q[L[HEAD] * 8]) % 65535 < 32768 and (L[SEQ] - a) % 65535 < 32768:
        L[HEAD] = (L[HEAD] + 1) % SIZE
        L[COUNT] -= 1
        if L[NEXT]:
            L[NEXT] -= 1
        L[RTO] = RTO0
        L[RT] = 0


def tick(dt):
    if L[UP] < CAP:
        L[UP] += dt
    L[RT] += dt
    L[HB] += dt
    L[MS] += dt
    while L[MS] >= 1000:
        L[MS] -= 1000
        L[SEC] += 1
    if L[HB] >= cfg.V[HEARTBEAT_S] * 1000:
        L[HB] = 0
        tx.send(-1, 0)
    elif L[NEXT] < L[COUNT]:
        tx.send(L[NEXT], 0)
        L[NEXT] += 1
        L[RT] = 0
    elif L[COUNT] and L[RT] >= L[RTO]:
        L[NEXT] = L[RT] = 0
        L[RETX] += L[COUNT]
        L[RTO] = min(L[RTO] * 2, RTO_MAX)
