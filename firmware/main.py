# Boot. For 0.3 s Ctrl-C still reaches the REPL, so a board is reflashable
# whatever its firmware does; after that only a Z frame leaves the loop.
import time
time.sleep_ms(300)
import loop
loop.run()
