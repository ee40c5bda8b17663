"""The whole system on one machine, on embedded defaults (`seatlink demo`, issue 7)."""
