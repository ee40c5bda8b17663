# The link's state and everything it sends. L holds the counters (slots
# below), Q the queue of unacked frames (8 ints each), TB the frame buffer.
import gc
import board
import frame
from seat import S, ST, RS, CALL, T, HELPING, OFFHOOK, OVER, PST, PRS, MISS
HEAD, COUNT, NEXT, SEQ, RXSEQ, RT, HB, MS, SEC, BAD = 0, 1, 2, 3, 4, 5, 6, 7, 8, 9
DROP, RETX, ERR, WORST, QUIT, RN, RTO, UP, BOOT = 10, 11, 12, 13, 14, 15, 16, 17, 18
SIZE = 10  # frames the seat keeps for the host
EVENT, REJECT, SNAP, HELLO, ACKF, BEAT = 69, 88, 83, 66, 65, 72
L = [0] * 19
Q = [0] * (SIZE * 8)  # seq, kind, code, state, reason, call, a, b
TB = bytearray(128)
FW = b'0.1.0'
UID = b''


def f(p, v):
    TB[p] = 32
    return frame.num(TB, p + 1, v)


def send(i, a):
    # i >= 0: queued frame i; -1: heartbeat; -2: ack of a
    j = (L[HEAD] + i) % SIZE * 8
    k = Q[j + 1] if i >= 0 else BEAT if i == -1 else ACKF
    p = frame.num(TB, 0, Q[j] if i >= 0 else 0)
    TB[p] = 32
    TB[p + 1] = k
    p += 2
    if k == EVENT:
        for x in range(2, 8):
            p = f(p, Q[j + x])
    elif k == REJECT:
        p = f(f(f(p, Q[j + 2]), Q[j + 6]), Q[j + 7])
    elif k == SNAP:
        p = snap(p, Q[j + 6])
    elif k == ACKF:
        p = f(p, a)
    else:
        p = status(k, p)
    seal(p)


def snap(p, g):
    # rendered when sent, so a resent snapshot is current; g: where the
    # frames dropped just before it begin (0: none dropped)
    p = f(f(f(f(p, S[ST]), S[RS]), S[CALL]), S[T] // 1000)
    p = f(f(p, S[HELPING] | S[OFFHOOK] << 1 | S[OVER] << 2), S[PST])
    p = f(p, S[PRS] if S[PST] >= 0 else 0)  # no stale reason once nothing is pending
    return f(f(f(p, S[MISS]), L[DROP]), g)


def status(k, p):
    # heartbeat: health, boot, firmware, board id (a host that missed the
    # hello learns them here), newest seq queued (with the queue depth: which
    # frames the seat holds); hello: protocol, boot, firmware, board id, board
    if k == BEAT:
        gc.collect()
        p = f(f(f(f(p, L[SEC]), board.mem()), L[WORST]), L[BAD])
        p = f(f(f(f(f(p, L[DROP]), L[COUNT]), L[RETX]), L[ERR]), L[BOOT])
        L[WORST] = 0
    else:
        p = f(f(p, 1), L[BOOT])
    for t in (FW, UID, board.NAME) if k == HELLO else (FW, UID):
        TB[p] = 32
        p += 1
        for c in t:
            TB[p] = c
            p += 1
    return f(p, L[SEQ]) if k == BEAT else p


def seal(p):
    c = frame.crc(TB, p)
    TB[p] = 42
    for x in range(4):
        TB[p + 1 + x] = frame.HEX[(c >> (12 - 4 * x)) & 15]
    TB[p + 5] = 10
    board.write(TB, p + 6)
