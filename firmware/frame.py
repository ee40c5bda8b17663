# Seat link frames: b"<seq> <kind>[ <field>]*<crc>\n", docs/protocol.md.
# CRC-16/CCITT-FALSE of everything before '*', four upper-case hex digits.
# Written into and parsed from preallocated buffers: nothing allocates.
HEX = b'0123456789ABCDEF'
T = (0, 0x1021, 0x2042, 0x3063, 0x4084, 0x50A5, 0x60C6, 0x70E7,
     0x8108, 0x9129, 0xA14A, 0xB16B, 0xC18C, 0xD1AD, 0xE1CE, 0xF1EF)
F = [0] * 11  # parsed: F[0] is the sequence, then the fields
N = 0  # how many fields follow the kind


def crc(b, n):
    c = 0xFFFF
    i = 0
    while i < n:
        c ^= b[i] << 8
        c = ((c << 4) & 0xFFFF) ^ T[c >> 12]
        c = ((c << 4) & 0xFFFF) ^ T[c >> 12]
        i += 1
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


def text(b, i, t):
    for c in t:
        b[i] = c
        i += 1
    return i


def close(b, i):
    c = crc(b, i)
    b[i] = 42
    b[i + 1] = HEX[c >> 12]
    b[i + 2] = HEX[(c >> 8) & 15]
    b[i + 3] = HEX[(c >> 4) & 15]
    b[i + 4] = HEX[c & 15]
    b[i + 5] = 10
    return i + 6


def parse(b, n):
    # -> kind byte, or 0 for a bad frame; fields land in F and N
    global N
    if n > 0 and b[n - 1] == 13:
        n -= 1
    p = n - 5
    if p < 3 or b[p] != 42:
        return 0
    c = crc(b, p)
    s = 12
    i = p + 1
    while i < n:
        h = HEX.find(b[i])
        if h < 0 or (c >> s) & 15 != h:
            return 0
        s -= 4
        i += 1
    k = 0
    f = 0
    v = -1
    i = 0
    while i < p:
        c = b[i]
        if 48 <= c <= 57:
            v = (0 if v < 0 else v * 10) + c - 48
            if v > 99999999:
                return 0
        elif c == 32:
            if v >= 0:
                if f > 10:
                    return 0
                F[f] = v
                f += 1
                v = -1
            elif f != 1 or not k:
                return 0
        elif f == 1 and not k and 65 <= c <= 90 and b[i - 1] == 32:
            k = c
        else:
            return 0
        i += 1
    if v >= 0:
        if f > 10:
            return 0
        F[f] = v
        f += 1
    if not k:
        return 0
    N = f - 1
    return k
