"""Hardware-in-the-loop tests: the seat firmware on an emulated (QEMU), virtual or real board.

A package so that tools/bench.py can use the same device-under-test code (hil_tests.dut).
"""
