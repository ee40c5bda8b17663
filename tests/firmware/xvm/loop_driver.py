# Runs loop.run() on the scripted board until the script's end, in either VM; the scenario
# (SCRIPT, END) is set on the board before this module is imported.
import board
import loop
import seat
import tx

try:
    loop.run()
except board.Stop:
    pass

RESULT = {
    'tx': board.TXL,
    'lights': board.LIGHTS,
    'L': list(tx.L),
    'S': list(seat.S),
}
