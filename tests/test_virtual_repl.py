"""A virtual seat's REPL (gateway.virtual_repl) answers as a micro:bit v1's MicroPython 1.9.2:
the real client code (gateway.rig.rawrepl, `seatlink flash`) drives it over a TCP socket as
it drives an emulated board, and the bytes it sends are those the real firmware sent under
QEMU (the transcripts below were measured there, firmware-microbit-micropython 1.0.1)."""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.bundle import firmware_bundle
from gateway.fleet.flash import Firmware, Job, Target, flash_board, identify, leave_firmware
from gateway.rig.board import FS_BYTES
from gateway.rig.rawrepl import RawRepl, RemoteError
from gateway.virtual_repl import CHUNK_DATA, VirtualRepl

UID = bytes.fromhex("5ea70001c0ffee42")
FRIENDLY = (
    b"MicroPython v1.9.2-34-gd64154c73 on 2017-09-01; micro:bit v1.0.1 with nRF51822\r\n"
    b'Type "help()" for more information.\r\n>>> '
)
RAW = b"raw REPL; CTRL-B to exit\r\n>"


# --- harnesses ---------------------------------------------------------------------------------


class Board:
    """A VirtualRepl with its output collected; a reboot finds no main.py (the banner)."""

    def __init__(self, fs: Path) -> None:
        self.out = bytearray()
        self.reboots: list[str] = []
        self.repl = VirtualRepl(fs=fs, uid=UID, write=self.out.extend, reboot=self._reboot)

    def _reboot(self, kind: str) -> None:
        self.reboots.append(kind)
        self.repl.banner()

    def send(self, data: bytes) -> bytes:
        self.out.clear()
        self.repl.feed(data)
        return bytes(self.out)


class SerialServer:
    """A VirtualRepl behind a TCP listener, one client at a time, as a board's UART is."""

    def __init__(self, fs: Path) -> None:
        self.reboots: list[str] = []
        self.raw_at_reboot: list[bool] = []
        self.errors: list[BaseException] = []  # feed() must never raise: checked at the end
        self._conn: socket.socket | None = None
        self.repl = VirtualRepl(fs=fs, uid=UID, write=self._send, reboot=self._reboot)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)  # accept() wakes up to see close()
        self.url = f"socket://127.0.0.1:{self._listener.getsockname()[1]}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _reboot(self, kind: str) -> None:
        self.reboots.append(kind)
        self.raw_at_reboot.append(self.repl.raw)
        self.repl.banner()  # a board without main.py comes up at its prompt

    def _send(self, data: bytes) -> None:
        conn = self._conn
        if conn is not None:
            try:
                conn.sendall(data)
            except OSError:
                pass  # the client went away: a serial line drops the bytes

    def _serve(self) -> None:
        try:
            while not self._stop.is_set():
                try:
                    conn, _ = self._listener.accept()
                except TimeoutError:
                    continue
                with conn:
                    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    conn.settimeout(0.05)
                    self._conn = conn
                    while not self._stop.is_set():
                        try:
                            data = conn.recv(4096)
                        except TimeoutError:
                            continue
                        except OSError:
                            break
                        if not data:
                            break
                        self.repl.feed(data)
                    self._conn = None
        except BaseException as exc:
            self.errors.append(exc)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._listener.close()
        assert not self._thread.is_alive()
        assert not self.errors, self.errors


@pytest.fixture
def fs(tmp_path: Path) -> Path:
    path = tmp_path / "fs"
    path.mkdir()
    return path


@pytest.fixture
def server(fs: Path) -> Iterator[SerialServer]:
    serving = SerialServer(fs)
    try:
        yield serving
    finally:
        serving.close()


@pytest.fixture
def repl(server: SerialServer) -> Iterator[RawRepl]:
    with RawRepl.open(server.url) as client:
        client.enter_raw()
        yield client


def files_in(fs: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(fs.iterdir())}


# --- the real client over a socket ----------------------------------------------------------


def test_exec_and_eval_share_a_namespace(repl: RawRepl) -> None:
    assert repl.exec("print('a', 'b', sep='-', end='!\\n')\nprint('c\\nd')") == ("a-b!\nc\nd\n", "")
    repl.exec("x = 41")
    assert repl.eval("x + 1") == 42
    # longer than the board's receive ring: RawRepl sends it in pieces joined on the board
    long = "y = [" + ",".join(str(i) for i in range(100)) + "]\nprint(sum(y))"
    assert repl.exec(long) == ("4950\n", "")


def test_files_are_written_read_listed_and_removed_in_the_seat_directory(
    repl: RawRepl, fs: Path
) -> None:
    data = bytes(range(256)) * 3
    repl.write_file("data.bin", data, verify=True)
    repl.write_file("notes.txt", b"hello\nworld\n")
    assert files_in(fs) == {"data.bin": data, "notes.txt": b"hello\nworld\n"}
    assert repl.read_file("data.bin") == data
    assert repl.eval("open('notes.txt').readline()") == "hello\n"  # text mode: str
    assert repl.eval("open('notes.txt', 'rb').read(5)") == b"hello"
    assert repl.list_files() == ["data.bin", "notes.txt"]
    repl.remove_file("data.bin")
    assert repl.list_files() == ["notes.txt"]
    assert files_in(fs) == {"notes.txt": b"hello\nworld\n"}


def test_soft_reset_reboots_with_a_fresh_heap(server: SerialServer, repl: RawRepl) -> None:
    repl.exec("x = 1")
    repl.soft_reset()
    repl.enter_raw()  # the harness's board has no main.py: its banner and prompt came back
    assert (server.reboots, server.raw_at_reboot) == (["soft"], [False])  # main.py runs
    with pytest.raises(RemoteError, match="NameError: name 'x' is not defined"):
        repl.exec("x")


def test_hard_reset_reboots_with_a_fresh_heap(server: SerialServer, repl: RawRepl) -> None:
    repl.exec("x = 1")
    repl.hard_reset()
    repl.enter_raw()
    assert server.reboots == ["hard"]
    with pytest.raises(RemoteError, match="NameError"):
        repl.exec("x")


def test_the_seat_exit_frame_at_the_prompt_is_junk_the_client_talks_past(repl: RawRepl) -> None:
    repl.exit_raw()
    leave_firmware(repl)  # what flash.py sends to a board whose firmware may be running
    repl.enter_raw()
    assert repl.eval("1 + 1") == 2


def test_flash_board_writes_the_microbit_set_then_skips_it(server: SerialServer, fs: Path) -> None:
    files = {f.name: f.data for f in firmware_bundle(board="microbit")}
    (fs / "boot").write_bytes(b"7")  # the firmware's boot counter: not flash's to remove
    (fs / "fw40").write_bytes(b"stale part of an older, longer set")

    first = flash_board(Target(server.url), Job(Firmware.checkout(), reset_after=False))
    assert first.ok, first.error
    assert (first.kind, first.uid) == ("microbit", UID.hex().upper())
    assert first.machine == "virtual micro:bit (seatlink farm)"
    assert first.written == list(files) and first.removed == ["fw40"]
    assert first.verified == len(files)
    assert files_in(fs) == dict(sorted({**files, "boot": b"7"}.items()))

    again = flash_board(Target(server.url), Job(Firmware.checkout(), reset_after=False))
    assert again.ok, again.error
    assert again.written == [] and again.skipped == list(files) and not again.changed
    assert server.reboots == []

    with RawRepl.open(server.url) as client:
        client.enter_raw()
        found = identify(client)
    assert (found.kind, found.uid, found.free) == ("microbit", UID.hex().upper(), 9000)


def test_mpremote_exec_works_after_its_soft_reboot_in_the_raw_repl(server: SerialServer) -> None:
    # mpremote soft-resets in the raw REPL and waits for the raw banner: the micro:bit stays
    # there without running main.py, and `raw` tells the owner so when reboot() is called
    done = subprocess.run(
        [sys.executable, "-m", "mpremote", "connect", server.url, "exec",
         "import os;print(os.uname()[0], 6*7)"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert (done.returncode, done.stdout, done.stderr) == (0, "microbit 42\n", "")
    assert (server.reboots, server.raw_at_reboot) == (["soft"], [True])


def test_board_errors_read_as_on_the_micro_bit(repl: RawRepl) -> None:
    # MicroPython 1.9 on the micro:bit has no ENOENT: its filesystem says this
    with pytest.raises(RemoteError) as missing:
        repl.read_file("nosuch")
    assert missing.value.traceback.endswith("OSError: file not found\n")
    out, err = repl.exec("print('before')\ndef (", check=False)
    assert (out, err) == (
        "",
        'Traceback (most recent call last):\n  File "<stdin>", line 2\n'
        "SyntaxError: invalid syntax\n",
    )
    with pytest.raises(RemoteError, match="ImportError: no module named 'nosuch'"):
        repl.exec("import nosuch")
    with pytest.raises(RemoteError, match="ImportError: no module named 'uos'"):
        repl.exec("import uos")  # not on this port
    with pytest.raises(RemoteError, match="AttributeError: 'module' object has no attribute"):
        repl.exec("import os\nos.stat('x')")  # this port has os.size instead


@pytest.mark.parametrize("name", ["../x", "a/b", "/etc/passwd", "..", "", "a\\b"])
def test_names_outside_the_seat_directory_are_refused(repl: RawRepl, fs: Path, name: str) -> None:
    before = sorted(p.name for p in fs.parent.rglob("*"))
    with pytest.raises(RemoteError, match="OSError"):
        repl.write_file(name, b"x", verify=False)
    with pytest.raises(RemoteError, match="OSError"):
        repl.exec(f"open({name!r})")
    assert sorted(p.name for p in fs.parent.rglob("*")) == before


def test_a_full_filesystem_fails_as_on_the_micro_bit(repl: RawRepl, fs: Path) -> None:
    # A write past the end: OSError 28 (no errno names on this port) and the file is gone.
    with pytest.raises(RemoteError) as full:
        repl.write_file("big", b"x" * 15_115, verify=False)
    assert full.value.traceback.endswith("OSError: 28\n")
    assert files_in(fs) == {}
    # The last byte that fits; then a new file finds no free chunk at all.
    repl.write_file("big", b"x" * 15_114, verify=False)
    with pytest.raises(RemoteError) as no_room:
        repl.write_file("more", b"x", verify=False)
    assert no_room.value.traceback.endswith("OSError: no more storage space\n")
    assert sorted(files_in(fs)) == ["big"]


def test_flash_says_the_filesystem_is_full(server: SerialServer, fs: Path) -> None:
    (fs / "recording").write_bytes(b"r" * 12_000)  # not firmware: flash keeps it
    result = flash_board(Target(server.url), Job(Firmware.checkout(), reset_after=False))
    assert result.error is not None and "filesystem is full" in result.error


def test_fs_bytes_is_about_what_one_file_can_hold(tmp_path: Path) -> None:
    board = Board(tmp_path)
    board.send(b"\x01f=open('fw0','wb')\x04")
    assert board.send(f"f.write(b'x'*{FS_BYTES})\x04".encode()) == b"OK\x04\x04>"
    assert board.send(f"f.write(b'x'*{CHUNK_DATA})\x04".encode()).endswith(b"OSError: 28\r\n\x04>")


# --- byte for byte, as the real firmware answered under QEMU --------------------------------

TB = b"Traceback (most recent call last):\r\n"
MEASURED: dict[str, list[tuple[bytes, bytes]]] = {
    "Ctrl-C at the prompt": [(b"\r\x03\x03", b"\r\n>>> \r\n>>> \r\n>>> ")],
    "Ctrl-B at the prompt": [(b"\x02", b"\r\n" + FRIENDLY)],
    "typed text is echoed, Ctrl-D then ignored": [(b"abc\x04\n", b"abc")],
    "Ctrl-A, Ctrl-A, Ctrl-C drops the code": [
        (b"\x01", b"\r\n" + RAW),
        (b"\x01", RAW),
        (b"print(1)\x03print(2)\x04", b"OK2\r\n\x04\x04>"),
    ],
    "no raw-paste in 1.9: mpremote's request ends in the raw banner": [
        (b"\x01", b"\r\n" + RAW),
        (b"\x05A\x01", RAW),
    ],
    "output": [
        (b"\x01", b"\r\n" + RAW),
        (b"print(1,2,sep='-')\x04", b"OK1-2\r\n\x04\x04>"),
        (b"print('a',end='');print('b\\nc')\x04", b"OKab\r\nc\r\n\x04\x04>"),
        ("print('é')\x04".encode(), "OKé\r\n\x04\x04>".encode()),
    ],
    "tracebacks": [
        (b"\x01", b"\r\n" + RAW),
        (b"def _g():\n 1/0\n_g()\x04", b"OK\x04" + TB + b'  File "<stdin>", line 3, in <module>'
         b'\r\n  File "<stdin>", line 2, in _g\r\nZeroDivisionError: division by zero\r\n\x04>'),
        (b"_s=b'x=1\\n1/0'\nexec(_s)\x04", b"OK\x04" + TB + b'  File "<stdin>", line 2, in '
         b'<module>\r\n  File "<string>", line 2, in <module>\r\nZeroDivisionError: division '
         b"by zero\r\n\x04>"),
        (b" x=1\x04", b"OK\x04" + TB + b'  File "<stdin>", line 1\r\nIndentationError: '
         b"unexpected indent\r\n\x04>"),
        (b"raise KeyboardInterrupt\x04", b"OK\x04" + TB + b'  File "<stdin>", line 1, in '
         b"<module>\r\nKeyboardInterrupt: \r\n\x04>"),
        (b"raise SystemExit(3)\x04", b"OK\x04\x04>"),
        (b"raise OSError(2,'y')\x04", b"OK\x04" + TB + b'  File "<stdin>", line 1, in '
         b"<module>\r\nOSError: (2, 'y')\r\n\x04>"),
        (b"{}['a']\x04", b"OK\x04" + TB + b'  File "<stdin>", line 1, in <module>\r\n'
         b"KeyError: a\r\n\x04>"),
        (b"open('t','a')\x04", b"OK\x04" + TB + b'  File "<stdin>", line 1, in <module>\r\n'
         b"ValueError: illegal mode\r\n\x04>"),
    ],
    "uname": [
        (b"\x01", b"\r\n" + RAW),
        (b"import os\nprint(os.uname()[:3])\x04",
         b"OK('microbit', 'microbit', '1.0.1')\r\n\x04\x04>"),
    ],
    "Ctrl-D without code in the raw REPL: soft reboot, still raw, no main.py": [
        (b"\x01x=5\x04", b"\r\n" + RAW + b"OK\x04\x04>"),
        (b"\x04", b"OK\r\nsoft reboot\r\n" + RAW),
        (b"print(x)\x04", b"OK\x04" + TB + b'  File "<stdin>", line 1, in <module>\r\n'
         b"NameError: name 'x' is not defined\r\n\x04>"),
    ],
    "Ctrl-D at the prompt: soft reboot, main.py (none here), banner": [
        (b"\x04", b"\r\nsoft reboot\r\n" + FRIENDLY),
    ],
    "machine.reset(): output before it, then the board boots": [
        (b"\x01import machine\x04", b"\r\n" + RAW + b"OK\x04\x04>"),
        (b"print('bye')\nmachine.reset()\nprint('never')\x04", b"OKbye\r\n" + FRIENDLY),
    ],
}  # fmt: skip


@pytest.mark.parametrize("steps", MEASURED.values(), ids=MEASURED.keys())
def test_answers_byte_for_byte_as_measured(
    tmp_path: Path, steps: list[tuple[bytes, bytes]]
) -> None:
    board = Board(tmp_path)
    for sent, answer in steps:
        assert board.send(sent) == answer, sent


def test_reboots_are_reported_with_the_raw_flag_telling_where_the_board_stays(
    tmp_path: Path,
) -> None:
    board = Board(tmp_path)
    board.send(b"\x04")
    assert (board.reboots, board.repl.raw) == (["soft"], False)  # then main.py
    board.send(b"\x01\x04")
    assert (board.reboots, board.repl.raw) == (["soft", "soft"], True)  # no main.py
    board.send(b"import machine\nmachine.reset()\x04")
    assert (board.reboots, board.repl.raw) == (["soft", "soft", "hard"], False)


def test_a_boot_traceback_reads_as_the_board_prints_it(tmp_path: Path) -> None:
    board = Board(tmp_path)
    board.repl.traceback(KeyboardInterrupt(), at="main.py")
    # measured: Ctrl-C in main.py's sleep (there on its line 2), then the banner at once
    assert bytes(board.out) == (
        TB + b'  File "__main__", line 1, in <module>\r\nKeyboardInterrupt: \r\n' + FRIENDLY
    )
    namespace: dict[str, object] = {}
    exec(compile("def run():\n 1/0\n", "<firmware bundled 0>/loop.py", "exec"), namespace)
    try:
        namespace["run"]()  # type: ignore[operator]
    except ZeroDivisionError as exc:
        board.out.clear()
        board.repl.traceback(exc)
    # the firmware's frame, not this test's (a host file)
    assert bytes(board.out) == (
        TB + b'  File "__main__", line 1, in <module>\r\n'
        b'  File "<firmware bundled 0>/loop.py", line 2, in run\r\n'
        b"ZeroDivisionError: division by zero\r\n" + FRIENDLY
    )


FRAGMENTS = [
    b"\x01", b"\x02", b"\x03", b"\x04", b"\x05", b"\r", b"\n", b"\x00", b"\xff", b"print(1)",
    b"import machine\nmachine.reset()", b"raise SystemExit", b"raise KeyboardInterrupt",
    b"1/0", b"def (", b"open('f','w').write('x'*300)", b"__import__('os').remove('f')",
    b"import os\nos.listdir()", b"x=1", b"x", b"open('f').read()", b"exec('1/0')",
]  # fmt: skip


@settings(deadline=None, max_examples=150)
@given(st.lists(st.sampled_from(FRAGMENTS) | st.binary(max_size=6), max_size=30))
def test_no_input_breaks_it_and_ctrl_c_ctrl_b_always_reach_the_prompt(
    pieces: list[bytes],
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        board = Board(Path(tmp))
        for piece in pieces:
            board.send(piece)
        # what RawRepl.interrupt sends, then Ctrl-B: the friendly prompt, whatever came before
        assert board.send(b"\r\x03\x03\x02").endswith(b"\r\n" + FRIENDLY)


def test_sleep_and_ticks_follow_the_host_clock(tmp_path: Path) -> None:
    board = Board(tmp_path)
    board.send(b"\x01")
    start = time.monotonic()
    answer = board.send(
        b"import utime\nt=utime.ticks_ms()\nutime.sleep_ms(30)\n"
        b"print(utime.ticks_diff(utime.ticks_ms(),t)>=30, utime.ticks_diff(1, 2**30-1))\x04"
    )
    assert answer == b"OKTrue 2\r\n\x04\x04>"
    assert time.monotonic() - start >= 0.03
