"""`seatlink flash`: emulated micro:bits flashed in parallel and verified, reflashed with
unchanged files skipped, and every bad input refused with the board left as it was.

RP2040/ESP32 boards are not at hand: their path (the real mpremote command line) runs
against `StandInBoard`, current MicroPython's raw REPL played by CPython over a socket with
an in-memory filesystem. It proves the command lines and the parsing, not a board.
"""

from __future__ import annotations

import base64
import builtins
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.cli import run
from gateway.edge.inventory import load_inventory
from gateway.fleet.board_update import UpdateError, replace_firmware, restore_firmware
from gateway.fleet.flash import (
    BundleError,
    FileSet,
    Firmware,
    Job,
    Mpremote,
    Plan,
    Target,
    firmware_version,
    flash_many,
    load_bundle,
    write_bundle,
)
from gateway.rig import (
    BoardSet,
    EmulatedBoard,
    QemuMicrobit,
    RawRepl,
    boot_many,
    firmware_files,
)
from gateway.rig.qemu import unavailable_reason

ROOT = Path(__file__).resolve().parents[2]


# --- emulated boards -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def boards() -> Iterator[BoardSet]:
    reason = unavailable_reason()
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    with boot_many(4) as started:
        yield started


@pytest.fixture
def blank(boards: BoardSet) -> BoardSet:
    """The boards with nothing on them."""
    for board in boards:
        with fresh_repl(board) as repl:
            for name in repl.list_files():
                repl.remove_file(name)
    return boards


def fresh_repl(board: EmulatedBoard) -> RawRepl:
    """The REPL with an empty heap: reset, and Ctrl-C lands in main.py's first moments (the
    firmware's parts, loaded and failed, would fill the micro:bit's heap)."""
    repl = RawRepl.open(board.serial_url)
    try:
        board.reset()
        repl.interrupt_boot(deadline=3.0)
        # a Ctrl-C that landed as a short main.py ended is a pending KeyboardInterrupt
        # in MicroPython 1.9: let it hit this
        repl.exec("pass", check=False)
    except BaseException:
        repl.close()
        raise
    return repl


def files_on(board: EmulatedBoard) -> dict[str, bytes]:
    with fresh_repl(board) as repl:
        return {name: repl.read_file(name) for name in sorted(repl.list_files())}


def put(board: EmulatedBoard, files: dict[str, bytes]) -> None:
    with fresh_repl(board) as repl:
        for name, data in files.items():
            repl.write_file(name, data)


def microbit_set() -> dict[str, bytes]:
    return firmware_files()


def firmware_of(files: dict[str, bytes]) -> Firmware:
    return Firmware({"microbit": FileSet("microbit", "9.9.9", files)}, source="test set")


def fast_job() -> Job:
    """Few, short attempts at the REPL: for ports that will never answer."""
    return Job(Firmware.checkout(), attempts=2, repl_timeout=0.5)


def dead_ports() -> tuple[str, socket.socket]:
    """(a port nothing listens on, a listening socket that accepts and never speaks)."""
    with socket.socket() as gone:
        gone.bind(("127.0.0.1", 0))
        closed = gone.getsockname()[1]
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()  # the kernel completes connections; nobody ever reads or writes
    return f"socket://127.0.0.1:{closed}", silent


@pytest.mark.hil
def test_four_boards_in_parallel_verified_then_reflash_skips(blank: BoardSet) -> None:
    files = microbit_set()
    targets = [Target(b.serial_url) for b in blank]
    start = time.monotonic()
    results = flash_many(targets, Job(Firmware.checkout()), jobs=4)
    wall = time.monotonic() - start
    for board, r in zip(blank, results, strict=True):
        assert r.ok, r.error
        # the board's own id, as its hello sends it (the rig's, in UICR)
        assert (r.kind, r.uid, r.version) == ("microbit", board.uid, firmware_version())
        assert r.written == list(files) and r.written[-1] == "main.py"
        assert r.skipped == [] and r.verified == len(files)
    # in parallel: the run took about one board's time, not four
    assert wall < 0.75 * sum(r.seconds for r in results)
    for board in blank:
        assert files_on(board) == dict(sorted(files.items()))

    again = flash_many(targets, Job(Firmware.checkout()), jobs=4)
    for r in again:
        assert r.ok, r.error
        assert r.written == [] and r.skipped == list(files) and r.verified == len(files)
        assert not any("cannot tell these boards apart" in n for n in r.notes)

    # One file changed here, a stale part and the firmware's own data file on the board:
    # only the changed file is written (and main.py, removed first, comes back last), the
    # stale part goes, the data file stays.
    put(blank[1], {"fw30": b"print('stale')\n", "boot": b"7"})
    changed = dict(files)
    changed["fw3"] = files["fw3"] + b"\n"
    results = flash_many(targets, Job(firmware_of(changed)), jobs=4)
    for i, r in enumerate(results):
        assert r.ok, r.error
        assert r.written == ["fw3", "main.py"]
        assert len(r.skipped) == len(files) - 2 and r.verified == len(files)
        assert r.removed == (["fw30"] if i == 1 else [])
    assert files_on(blank[1]) == dict(sorted({**changed, "boot": b"7"}.items()))


@pytest.mark.hil
def test_dry_run_writes_nothing(blank: BoardSet) -> None:
    files = microbit_set()
    partial = {name: files[name] for name in list(files)[:5]}
    partial["fw1"] = b"x = 1\n"
    put(blank[0], partial)
    before = files_on(blank[0])
    [r] = flash_many([Target(blank[0].serial_url)], Job(Firmware.checkout(), dry_run=True))
    assert r.ok, r.error
    assert r.skipped == [n for n in list(files)[:5] if n != "fw1"]
    assert r.written == [n for n in files if n not in r.skipped]
    assert files_on(blank[0]) == before


@pytest.mark.hil
def test_unknown_board_is_refused_and_untouched(blank: BoardSet, tmp_path: Path) -> None:
    put(blank[0], {"main.py": b"x = 1\n"})
    before = files_on(blank[0])
    other = tmp_path / "inventory.toml"
    other.write_text('[[seat]]\nseat = "s101"\nboard = "5EA70001"\n')
    job = Job(Firmware.checkout(), inventory=load_inventory(other), require_bound=True)
    [r] = flash_many([Target(blank[0].serial_url)], job)
    assert r.error is not None and "bound to no seat" in r.error and blank[0].uid in r.error
    assert "\n" not in r.error and r.written == [] and not r.changed
    assert files_on(blank[0]) == before

    # bound: its seat is in the result
    bound = tmp_path / "bound.toml"
    bound.write_text(f'[[seat]]\nseat = "s102"\nboard = "{blank[0].uid.lower()}"\n')
    job = Job(Firmware.checkout(), inventory=load_inventory(bound), require_bound=True)
    [r] = flash_many([Target(blank[0].serial_url)], job)
    assert r.ok and r.seat == "s102" and r.verified == len(microbit_set())


@pytest.mark.hil
def test_two_boards_with_one_id_are_named_in_the_summary(qemu_available: None) -> None:
    twins = BoardSet([EmulatedBoard(emulator=QemuMicrobit(uid="5EA7000000000042"))
                      for _ in range(2)])  # fmt: skip
    with twins:
        for board in twins:
            board.start()
        results = flash_many([Target(b.serial_url) for b in twins], Job(Firmware.checkout()))
    assert [r.uid for r in results] == ["5EA7000000000042"] * 2
    for r in results:
        assert r.ok, r.error
        assert any("cannot tell these boards apart" in n for n in r.notes), r.notes


def test_wrong_port_and_silent_port_fail_clearly() -> None:
    closed, silent = dead_ports()
    with silent:
        quiet = f"socket://127.0.0.1:{silent.getsockname()[1]}"
        wrong, mute = flash_many([Target(closed), Target(quiet)], fast_job())
    assert wrong.error == f"cannot open {closed}: Connection refused"
    assert mute.error == ("never entered the raw REPL in 2 attempt(s) of 0.5 s (Ctrl-C, the Z "
                          "exit frame); nothing heard from the board")  # fmt: skip
    assert not (wrong.written or mute.written)


LOCKED_MAIN = (
    b"import microbit, micropython\n"
    b"microbit.sleep(100)\n"
    b"micropython.kbd_intr(-1)\n"
    b"while True:\n"
    b"    microbit.sleep(10)\n"
)
"""Like the seat firmware: Ctrl-C reaches the REPL for a moment, then never again."""

Z_MAIN = (
    b"import microbit, micropython\n"
    b"microbit.sleep(100)\n"
    b"micropython.kbd_intr(-1)\n"
    b"b = b''\n"
    b"while True:\n"
    b"    c = microbit.uart.read()\n"
    b"    if c:\n"
    b"        b = (b + c)[-40:]\n"
    b"        if b'Z 24231*' in b:\n"
    b"            break\n"
    b"    microbit.sleep(5)\n"
    b"micropython.kbd_intr(3)\n"
)
"""A stand-in for the seat firmware's Z frame (the real one does not fit the micro:bit v1):
Ctrl-C disabled, and the loop left on the exit frame."""


@pytest.mark.hil
def test_board_that_disabled_ctrl_c(blank: BoardSet) -> None:
    board = blank[0]
    put(board, {"main.py": LOCKED_MAIN})
    board.reset()
    time.sleep(0.3)  # past the Ctrl-C window
    # no way to reset it: it never enters the raw REPL, and is left as it was
    [r] = flash_many([Target(board.serial_url)], fast_job())
    assert r.error is not None and r.error.startswith("never entered the raw REPL in 2 attempt")
    assert files_on(board) == {"main.py": LOCKED_MAIN}

    # with the rig's reset: the retry resets it and catches main.py as it starts
    board.reset()
    time.sleep(0.3)
    job = Job(Firmware.checkout(), attempts=3, repl_timeout=0.5)
    [r] = flash_many([Target(board.serial_url, reset=board.reset)], job)
    assert r.ok, r.error
    assert files_on(board) == dict(sorted(microbit_set().items()))

    # firmware that takes the Z exit frame needs no reset
    put(board, {"main.py": Z_MAIN})
    board.reset()
    time.sleep(0.3)
    [r] = flash_many([Target(board.serial_url)], job)
    assert r.ok, r.error
    assert r.written == ["main.py"] and len(r.skipped) == len(microbit_set()) - 1


# --- the board half of the gateway's remote update -----------------------------------------


@pytest.mark.hil
def test_remote_update_keeps_the_running_firmware_and_puts_it_back(blank: BoardSet) -> None:
    """On MicroPython 1.9's own raw REPL and filesystem: the running set read back and
    checked, the new one written (changed files only), the old one written back."""
    board = blank[0]
    [r] = flash_many([Target(board.serial_url)], Job(Firmware.checkout()))
    assert r.ok, r.error
    old = microbit_set()
    new = dict(old)
    new["fw0"] = old["fw0"].replace(f"b'{firmware_version()}'".encode(), b"b'0.1.1'")
    kept: list[FileSet] = []

    # the wrong board: refused before anything is read back or written
    with pytest.raises(UpdateError, match="not the seat's board 5EA70001") as refused:
        replace_firmware(board.serial_url, uid="5EA70001", version=firmware_version(),
                         choose=firmware_of(new).for_kind, keep=kept.append)  # fmt: skip
    assert not refused.value.result.changed and kept == []

    result = replace_firmware(board.serial_url, uid=board.uid, version=firmware_version(),
                              choose=firmware_of(new).for_kind, keep=kept.append)  # fmt: skip
    assert result.written == ["fw0", "main.py"] and result.verified == len(new)
    [backup] = kept
    assert dict(backup.files) == old and backup.version == firmware_version()
    assert list(backup.files)[-1] == "main.py"  # written last on the way back too
    assert files_on(board) == dict(sorted(new.items()))

    back = restore_firmware(board.serial_url, backup=backup)
    assert back.written == ["fw0", "main.py"] and back.verified == len(old)
    assert files_on(board) == dict(sorted(old.items()))


# --- bundles ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bundle") / "firmware.json"
    write_bundle(path)
    return path


def test_bundle_holds_the_checkout(bundle: Path) -> None:
    firmware = load_bundle(bundle)
    assert firmware.kinds() == ["esp32", "microbit", "pico"]
    assert dict(firmware.for_kind("microbit").files) == microbit_set()
    assert firmware.for_kind("pico").version == firmware_version()


def _edited(bundle: Path, tmp: Path, edit: Any) -> Path:
    doc = json.loads(bundle.read_text())
    edit(doc)
    out = tmp / "edited.json"
    out.write_text(json.dumps(doc))
    return out


def _files(doc: dict[str, Any]) -> list[dict[str, Any]]:
    files: list[dict[str, Any]] = doc["boards"]["microbit"]["files"]
    return files


def _damage(doc: dict[str, Any]) -> None:
    _files(doc)[3]["data"] = base64.b64encode(b"x = 2\n" * 10).decode()
    _files(doc)[3]["size"] = 60


def _rename(doc: dict[str, Any]) -> None:
    _files(doc)[0]["name"] = "../boot.py"


def _gap(doc: dict[str, Any]) -> None:
    del _files(doc)[2]


def _main_first(doc: dict[str, Any]) -> None:
    files = _files(doc)
    files.insert(0, files.pop())


@pytest.mark.parametrize(
    ("corrupt", "message"),
    [
        (lambda b, t: _edited(b, t, _damage), "fw3: SHA-256 differs from the manifest's"),
        (lambda b, t: _edited(b, t, _rename), "unknown file name '../boot.py'"),
        (lambda b, t: _edited(b, t, _gap), "are not numbered 0, 1, 2"),
        (lambda b, t: _edited(b, t, _main_first), "main.py must be the last file"),
        (lambda b, t: _cut(b, t), "bad JSON at line"),
        (lambda b, t: _text(t, "{not json"), "bad JSON at line 1 column 2"),
        (lambda b, t: _text(t, '{"format": "zip"}'), "not a seatlink firmware bundle"),
        (lambda b, t: t / "missing.json", "cannot read the bundle"),
    ],
    ids=["bad-hash", "unknown-name", "part-gap", "main-not-last", "truncated", "bad-json",
         "not-a-bundle", "missing"],
)  # fmt: skip
def test_corrupt_bundle_is_refused(bundle: Path, tmp_path: Path, corrupt: Any,
                                   message: str) -> None:  # fmt: skip
    with pytest.raises(BundleError, match=re.escape(message)):
        load_bundle(corrupt(bundle, tmp_path))


def _cut(bundle: Path, tmp: Path) -> Path:
    out = tmp / "cut.json"
    data = bundle.read_bytes()
    out.write_bytes(data[: len(data) // 2])
    return out


def _text(tmp: Path, text: str) -> Path:
    out = tmp / "text.json"
    out.write_text(text)
    return out


def test_truncated_file_data_is_refused(bundle: Path, tmp_path: Path) -> None:
    def shorten(doc: dict[str, Any]) -> None:
        entry = _files(doc)[0]
        entry["data"] = base64.b64encode(base64.b64decode(entry["data"])[:-8]).decode()

    with pytest.raises(BundleError, match=r"fw0: \d+ bytes, the manifest says \d+ \(truncated"):
        load_bundle(_edited(bundle, tmp_path, shorten))


@pytest.mark.hil
def test_corrupt_bundle_touches_no_board(
    blank: BoardSet, bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    put(blank[0], {"main.py": b"x = 1\n"})
    before = files_on(blank[0])
    bad = _edited(bundle, tmp_path, _damage)
    assert run(["flash", blank[0].serial_url, "--bundle", str(bad), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("seatlink flash: bundle refused, no board touched: ")
    assert err.count("\n") == 1
    assert files_on(blank[0]) == before


# --- the command line ------------------------------------------------------------------------


@pytest.mark.hil
def test_cli_flashes_from_a_bundle_with_a_summary(
    blank: BoardSet, bundle: Path, tmp_path: Path
) -> None:
    closed, silent = dead_ports()
    report = tmp_path / "report.json"
    ports = [blank[0].serial_url, blank[1].serial_url, closed]
    with silent:
        done = subprocess.run(
            [sys.executable, "-m", "gateway.cli", "flash", *ports, "--bundle", str(bundle),
             "--report", str(report), "--attempts", "2", "--repl-timeout", "0.5"],
            capture_output=True, text=True, cwd=ROOT, timeout=60,
        )  # fmt: skip
    assert done.returncode == 1, done.stderr  # one port failed
    out = done.stdout
    assert f"bundle firmware.json (firmware {firmware_version()})" in out
    rows = [line for line in out.splitlines() if "socket://" in line and "│" in line]
    assert len(rows) == 3
    n = str(len(microbit_set()))
    for board, row in zip(blank, rows[:2], strict=False):
        cells = [c.strip() for c in row.split("│")[1:-1]]
        assert cells[2:4] == ["microbit", board.uid]
        assert cells[6:9] == [n, "0", n] and cells[10] == "ok"
    assert rows[2].split("│")[-2].strip() == "FAILED"
    assert f"{closed}: cannot open {closed}: Connection refused" in out
    results = json.loads(report.read_text())
    assert [r["ok"] for r in results] == [True, True, False]
    for board in (blank[0], blank[1]):
        assert files_on(board) == dict(sorted(microbit_set().items()))


def test_a_release_bundle_is_stamped_with_its_version(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    path = tmp_path / "release.json"
    assert run(["flash", "--write-bundle", str(path), "--firmware-version", "0.1.0+site.3"]) == 0
    assert "firmware 0.1.0+site.3" in capsys.readouterr().out
    release = load_bundle(path)
    for kind in release.kinds():
        fileset = release.for_kind(kind)
        assert fileset.version == "0.1.0+site.3"
        # what the seats' hello will say: the firmware's own FW constant
        assert any(b"'0.1.0+site.3'" in data for data in fileset.files.values()), kind
    checkout = dict(Firmware.checkout().for_kind("microbit").files)
    stamped = dict(release.for_kind("microbit").files)
    assert [n for n in checkout if checkout[n] != stamped[n]] == ["fw0"]  # nothing else moved
    assert run(["flash", "--write-bundle", str(path), "--firmware-version", "1.0 beta"]) == 2
    assert "firmware version '1.0 beta' is not 1-32 of" in capsys.readouterr().err
    assert run(["flash", "socket://127.0.0.1:1", "--firmware-version", "1.0"]) == 2
    assert "--firmware-version goes with --write-bundle" in capsys.readouterr().err


def test_cli_refuses_bad_usage(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["flash"]) == 2
    assert "no PORT given" in capsys.readouterr().err
    assert run(["flash", "socket://127.0.0.1:1", "socket://127.0.0.1:1"]) == 2
    assert "port given twice" in capsys.readouterr().err
    assert run(["flash", "socket://127.0.0.1:1", "--require-bound"]) == 2
    assert "--require-bound needs --inventory" in capsys.readouterr().err


# --- RP2040 / ESP32: mpremote against a stand-in ---------------------------------------------


class StandInBoard:
    """Current MicroPython's REPL on a socket (one client at a time), as far as the raw REPL,
    mpremote's exec and file commands go: code sent to it runs under CPython, with `os`,
    `machine` and `open` over an in-memory filesystem. Not an emulator of any board."""

    BANNER = "MicroPython v1.24.0 on 2024-10-25; {machine}\r\nType \"help()\" for more information."

    def __init__(self, sysname: str = "rp2", machine: str = "Raspberry Pi Pico with RP2040",
                 uid: bytes = bytes.fromhex("e6614104032f2a2b")) -> None:  # fmt: skip
        self.sysname, self.machine, self.uid = sysname, machine, uid
        self.files: dict[str, bytes] = {}
        self.resets = 0
        self._ns: dict[str, Any] = {}
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen()
        self._listener.settimeout(0.05)  # accept() wakes up to see close()
        self._closed = threading.Event()
        self.url = f"socket://127.0.0.1:{self._listener.getsockname()[1]}"
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._closed.set()
        self._thread.join(timeout=5)
        self._listener.close()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            conn.settimeout(None)
            with conn:
                try:
                    self._serve(conn)
                except OSError:
                    pass  # the client went away mid-answer: next client

    def _serve(self, conn: socket.socket) -> None:
        raw, paste, code = False, 0, bytearray()
        banner = ("\r\n" + self.BANNER.format(machine=self.machine) + "\r\n>>> ").encode()
        while True:
            try:
                data = conn.recv(4096)
                # mpremote's socket keeps Nagle on: ACK at once, or each exec waits ~40 ms
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
            except OSError:
                return
            if not data:
                return
            for byte in data:
                if paste:  # the rest of mpremote's raw-paste request: not supported
                    paste -= 1
                    if not paste:
                        conn.sendall(b"R\x00")
                    continue
                if not raw:
                    if byte == 1:
                        raw, code = True, bytearray()
                        conn.sendall(b"raw REPL; CTRL-B to exit\r\n>")
                    elif byte == 2:
                        conn.sendall(banner)
                    elif byte == 3:
                        conn.sendall(b"\r\n>>> ")
                    elif byte == 4:
                        self._ns = {}
                        conn.sendall(b"MPY: soft reboot\r\n" + banner[2:])
                elif byte == 1:
                    code = bytearray()
                    conn.sendall(b"raw REPL; CTRL-B to exit\r\n>")
                elif byte == 2:
                    raw = False
                    conn.sendall(banner)
                elif byte == 3:
                    code = bytearray()
                elif byte == 5:
                    paste = 2
                elif byte == 4 and not code:
                    self._ns = {}
                    conn.sendall(b"soft reboot\r\nraw REPL; CTRL-B to exit\r\n>")
                elif byte == 4:
                    out, err = self._run(code.decode())
                    code = bytearray()
                    conn.sendall(b"OK" + out + b"\x04" + err + b"\x04>")
                else:
                    code.append(byte)

    def _run(self, code: str) -> tuple[bytes, bytes]:
        out: list[str] = []

        def _print(*args: object, sep: str = " ", end: str = "\n") -> None:
            out.append(sep.join(str(a) for a in args) + end)

        self._ns["__builtins__"] = {**vars(builtins), "print": _print, "open": self._open,
                                    "__import__": self._import}  # fmt: skip
        try:
            exec(code, self._ns)
        except Exception as exc:  # the board's traceback
            # MicroPython has no FileNotFoundError: OSError: [Errno 2] ENOENT
            kind = "OSError" if isinstance(exc, OSError) else type(exc).__name__
            text = "".join(out).replace("\n", "\r\n")
            return text.encode(), (f"Traceback (most recent call last):\r\n  File \"<stdin>\", "
                                   f"line 1\r\n{kind}: {exc}\r\n").encode()
        return "".join(out).replace("\n", "\r\n").encode(), b""

    def _import(self, name: str, *args: Any, **kwargs: Any) -> Any:
        fakes = {
            "os": types.SimpleNamespace(
                listdir=lambda path="": sorted(self.files), stat=self._stat,
                remove=self._remove, uname=self._uname),
            "machine": types.SimpleNamespace(unique_id=lambda: self.uid, reset=self._reset),
            "gc": types.SimpleNamespace(collect=lambda: None, mem_free=lambda: 150_000),
            "time": types.SimpleNamespace(sleep_ms=lambda ms: None),
        }  # fmt: skip
        if name in fakes:
            return fakes[name]
        if name in ("hashlib", "binascii", "sys"):
            return __import__(name)
        raise ImportError(f"no module named '{name}'")

    def _uname(self) -> tuple[str, ...]:
        return (self.sysname, self.sysname, "1.24.0", "v1.24.0 on 2024-10-25", self.machine)

    @staticmethod
    def _path(path: str) -> str:
        return path.removeprefix("./").lstrip("/")

    def _stat(self, path: str) -> tuple[int, ...]:
        name = self._path(path)
        if name in ("", "."):
            return (0x4000, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        if name not in self.files:
            raise OSError(2, "ENOENT")
        return (0x8000, 0, 0, 0, 0, 0, len(self.files[name]), 0, 0, 0)

    def _remove(self, path: str) -> None:
        if self.files.pop(self._path(path), None) is None:
            raise OSError(2, "ENOENT")

    def _reset(self) -> None:
        self.resets += 1

    def _open(self, path: str, mode: str = "r") -> Any:
        name = self._path(path)
        if "r" in mode and name not in self.files:
            raise OSError(2, "ENOENT")
        board = self

        class File:
            def __init__(self) -> None:
                self.data = bytearray(board.files.get(name, b"") if "w" not in mode else b"")
                self.at = 0

            def read(self, n: int = -1) -> bytes | str:
                end = len(self.data) if n < 0 else self.at + n
                chunk, self.at = bytes(self.data[self.at:end]), min(end, len(self.data))
                return chunk if "b" in mode else chunk.decode()

            def readinto(self, buf: Any) -> int:
                chunk = self.read(len(buf))
                assert isinstance(chunk, bytes)
                buf[: len(chunk)] = chunk
                return len(chunk)

            def write(self, data: bytes | str) -> int:
                self.data += data if isinstance(data, bytes) else data.encode()
                return len(data)

            def close(self) -> None:
                if "r" not in mode:
                    board.files[name] = bytes(self.data)

            def __enter__(self) -> File:
                return self

            def __exit__(self, *exc: object) -> None:
                self.close()

        return File()


@pytest.fixture
def standin() -> Iterator[StandInBoard]:
    board = StandInBoard()
    try:
        yield board
    finally:
        board.close()


def test_rp2040_path_runs_mpremote(standin: StandInBoard) -> None:
    pico = Firmware.checkout().for_kind("pico")
    standin.files = {"boot.py": b"# the board's own\n", "fw40": b"stale"}
    [r] = flash_many([Target(standin.url)], Job(Firmware.checkout()))
    assert r.ok, r.error
    assert (r.kind, r.uid, r.machine) == ("pico", "E6614104032F2A2B", standin.machine)
    assert r.written == list(pico.files) and r.removed == ["fw40"]
    assert r.verified == len(pico.files)
    assert standin.files == {**pico.files, "boot.py": b"# the board's own\n"}
    assert standin.resets == 1
    assert [c.split(" ", 4)[3] for c in r.commands] == ["exec", "fs", "exec", "reset"]

    again = flash_many([Target(standin.url)], Job(Firmware.checkout()))[0]
    assert again.ok and again.written == [] and again.skipped == list(pico.files)
    assert [c.split(" ", 4)[3] for c in again.commands] == ["exec", "exec", "reset"]


def test_mpremote_dry_run_shows_the_command_lines(
    standin: StandInBoard, capsys: pytest.CaptureFixture[str]
) -> None:
    pico = Firmware.checkout().for_kind("pico")
    standin.files = {"main.py": b"old", "fw0": pico.files["fw0"]}
    assert run(["flash", standin.url, "--dry-run", "--no-progress"]) == 0
    out = capsys.readouterr().out
    rest = " ".join(f"STAGED/{n}" for n in pico.files if n not in ("fw0", "main.py"))
    assert (f"mpremote connect {standin.url} fs rm :main.py + fs cp {rest} : + "
            f"fs cp STAGED/main.py :main.py") in out
    assert f"mpremote connect {standin.url} reset" in out
    assert standin.files == {"main.py": b"old", "fw0": pico.files["fw0"]} and not standin.resets


def test_mpremote_write_line() -> None:
    tool = Mpremote("/dev/ttyACM0")
    plan = Plan(write=("fw3", "main.py"), skip=("fw0",), remove=("fw9",), unarm=True)
    assert tool.write_line(plan, Path("/tmp/s")) == [
        "mpremote", "connect", "/dev/ttyACM0", "fs", "rm", ":main.py", ":fw9", "+",
        "fs", "cp", "/tmp/s/fw3", ":", "+", "fs", "cp", "/tmp/s/main.py", ":main.py"]  # fmt: skip
