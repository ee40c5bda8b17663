# frame.parse, crc and num on fixed lines, in either VM; an exception is a result too.
import frame

LINES = [  # body before '*', what follows the CRC
    [b'1 O 4711', b''], [b'12 G 3 2 2 500', b''], [b'0 A 17', b''], [b'0 I', b''],
    [b'5 Q', b''], [b'3 O 4711', b'\r'], [b'1 O  4711', b''], [b'1 O4711', b''],
    [b'O 1', b''], [b'1 O 123456789', b''],
]
RESULT = []
for body, tail in LINES:
    line = bytearray(body + b'*0000' + tail)
    c = frame.crc(line, len(body))
    for i in range(4):
        line[len(body) + 1 + i] = frame.HEX[(c >> (12 - 4 * i)) & 15]
    buf = bytearray(64)
    n = frame.num(buf, 0, -40711)
    try:
        k = frame.parse(line, len(line))
        RESULT.append([c, k, list(frame.F[:frame.N + 1]) if k else [], bytes(buf[:n]).decode()])
    except Exception as e:
        RESULT.append([c, 'error', type(e).__name__ + ': ' + str(e), ''])
