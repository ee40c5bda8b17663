# Seat link frames: b"<seq> <kind>[ <field>]*<crc>\n" (docs/protocol.md),
# CRC-16/CCITT-FALSE of the bytes before '*' as four upper-case hex digits.
# Written into and parsed from preallocated buffers: nothing allocates.
HEX = b'0123456789ABCDEF'
TBL = (0, 0x1021, 0x2042, 0x3063, 0x4084, 0x50A5, 0x60C6, 0x70E7,
       0x8108, 0x9129, 0xA14A, 0xB16B, 0xC18C, 0xD1AD, 0xE1CE, 0xF1EF)
F = [0] * 11  # parsed: F[0] the sequence, F[1..N] the fields
N = 0


def crc(b, n):
    c = 0xFFFF
    for i in range(n):
        c ^= b[i] << 8
        c = ((c << 4) & 0xFFFF) ^ TBL[c >> 12]
        c = ((c << 4) & 0xFFFF) ^ TBL[c >> 12]
    return c


def num(b, i, v):
    if v < 0:
        b[i] = 45
        i += 1
        v = -v
    d = 1
    while d * 10 <= v:
        d *= 10
    while d:
        b[i] = 48 + v // d % 10
        i += 1
        d //= 10
    return i


def check(b, p):
    # the four hex digits after '*' at p are the CRC of the body before it
    c = crc(b, p)
    for i in range(4):
        if b[p + 1 + i] != HEX[(c >> (12 - 4 * i)) & 15]:
            return 0
    return 1


def parse(b, n):
    # the kind byte, or 0 for a bad frame; only digits, one space apart
    global N
    if n and b[n - 1] == 13:
        n -= 1
    p = n - 5
    if p < 3 or b[p] != 42 or not check(b, p):
        return 0
    k = f = 0
    v = -1
    for i in range(p + 1):
        c = b[i] if i < p else 32  # a space closes the last field
        if 48 <= c <= 57 and (f != 1 or (k and b[i - 1] != k)):
            v = (0 if v < 0 else v * 10) + c - 48
            if v > 99999999:
                return 0
        elif c == 32 and v >= 0 and f < 11:
            F[f] = v
            f += 1
            v = -1
        elif f == 1 and not k and 65 <= c <= 90 and b[i - 1] == 32:
            k = c
        elif not (c == 32 and f == 1 and k and b[i - 1] == k):
            return 0
    if not k:
        return 0
    N = f - 1
    return k
