# Runs unchanged in MicroPython and CPython: drives the firmware core (seat, timers, agent,
# host, light, cfg) through a call day on its own 5 ms clock and keeps what happened in
# RESULT. No f-strings, no enumerate(start=), nothing MicroPython 1.9 lacks.
import agent
import cfg
import host
import light
import seat
import timers

NOW = [0]
EVENTS = []
LIGHTS = []
REPLIES = []
F = [0] * 11


def emit(code, a, b):
    S = seat.S
    EVENTS.append([NOW[0], code, S[0], S[1], S[2], a, b])


seat.emit = emit


def run_ms(ms, up=1):
    for _ in range(ms // 5):
        NOW[0] += 5
        timers.tick(5)
        if NOW[0] % 125 == 0:
            LIGHTS.append([NOW[0], light.rgb(up, NOW[0] % 2000, cfg.V[6] * 1000)])


def cmd(kind, fields):
    F[0] = len(REPLIES) + 1
    for i in range(len(fields)):
        F[i + 1] = fields[i]
    REPLIES.append([NOW[0], kind, host.do(ord(kind), F, len(fields))])


def edge(bits, levels, ms):
    agent.edge(bits, levels)
    run_ms(ms)


def tap_ready(after):
    edge(2, 2, 50)
    edge(2, 0, after)


tap_ready(50)                          # log in
cmd('G', [3, 2])                       # miss limit 2
cmd('G', [2, 500])                     # out of range: refused
cmd('O', [4711])                       # nobody answers: RONA after 3 x 5 s, back to Ready
run_ms(16000)
cmd('O', [4712, 2, 1000])              # 2 rings of 1 s: second miss, Not Ready (no answer)
run_ms(2500)
tap_ready(2500)                        # Not Ready -> Ready
cmd('O', [4713])
run_ms(1200)
edge(1, 1, 3000)                       # off hook answers
tap_ready(400)                         # pending Not Ready during talk
tap_ready(400)                         # ... stepped to reason 2
cmd('P', [4713, 1])                    # hold past 30 s
run_ms(31000)
cmd('P', [4713, 0])
edge(1, 0, 1000)                       # on hook: release, ACW
edge(8, 8, 50)                         # help
edge(8, 0, 60000)                      # ACW runs out: pending change applied
cmd('T', [1])                          # host sets Ready
run_ms(11000)                          # on hook in Ready: away
cmd('G', [9, 60])                      # idle limit 60 s
run_ms(61000)                          # idle in Not Ready: logged out
edge(2, 2, 3200)                       # long press while out

RESULT = {
    'events': EVENTS,
    'lights': LIGHTS,
    'replies': REPLIES,
    'S': list(seat.S),
    'V': list(cfg.V),
}
