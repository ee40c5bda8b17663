# Boot. For 0.3 s Ctrl-C still reaches the REPL, so a board whose firmware
# misbehaves can always be reflashed; after board.init() only a Z frame can.
import board
board.sleep(300)
board.init()
import loop
loop.run(board)
