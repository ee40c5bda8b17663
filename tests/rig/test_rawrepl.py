"""Raw REPL against a real emulated board."""

from __future__ import annotations

import time

import pytest

from gateway.rig import EmulatedBoard, RemoteError, VerifyError
from gateway.rig.rawrepl import RING, _pieces

pytestmark = pytest.mark.hil


def test_exec_and_eval(board: EmulatedBoard) -> None:
    with board.repl() as repl:
        assert repl.exec("print('a', 1 + 1)") == ("a 2\n", "")
        assert repl.exec("x = 6\nfor i in range(2):\n    x *= 7\nprint(x)")[0] == "294\n"
        free = repl.eval("__import__('gc').mem_free()")
        assert isinstance(free, int) and free > 5000


def test_board_error_raises_with_traceback(board: EmulatedBoard) -> None:
    with board.repl() as repl:
        with pytest.raises(RemoteError, match="ZeroDivisionError"):
            repl.exec("1/0")
        out, err = repl.exec("print('before')\nraise ValueError('x')", check=False)
        assert out == "before\n" and "ValueError" in err
        assert repl.exec("print('still fine')")[0] == "still fine\n"


def test_write_and_verify_a_large_file(board: EmulatedBoard) -> None:
    data = "".join(f"line {i:04d}: 'quotes' \"and\" \\ backslash\n" for i in range(80)).encode()
    data += bytes(range(256))  # any byte value survives the repr round trip
    assert len(data) > 2500
    with board.repl() as repl:
        repl.write_file("big.txt", data)
        assert repl.read_file("big.txt") == data
        assert "big.txt" in repl.list_files()
        with pytest.raises(VerifyError):
            repl.verify_file("big.txt", data[:-1] + b"?")
        repl.remove_file("big.txt")
        assert "big.txt" not in repl.list_files()


def test_files_survive_a_hard_reset(board: EmulatedBoard) -> None:
    with board.repl() as repl:
        repl.write_file("keep.txt", b"kept\n")
        repl.exec("marker = 1")
    board.reset()
    with board.repl() as repl:
        assert repl.read_file("keep.txt") == b"kept\n"
        _, err = repl.exec("print(marker)", check=False)
        assert "NameError" in err  # RAM did restart


def test_repl_resets_and_catches_firmware_that_disables_ctrl_c(
    board: EmulatedBoard, locked_main: bytes
) -> None:
    board.install({"main.py": locked_main})
    time.sleep(0.3)  # past main.py's Ctrl-C window: only a reset gets the REPL back
    with board.repl() as repl:
        assert repl.list_files() == ["main.py"]
        repl.remove_file("main.py")


def test_code_longer_than_the_receive_ring(board: EmulatedBoard) -> None:
    code = "total = 0\n" + "".join(f"total += {i}  # {'x' * 20}\n" for i in range(12))
    assert len(code) > 3 * RING
    with board.repl() as repl:
        repl.exec(code)
        assert repl.eval("total") == sum(range(12))
        with pytest.raises(RemoteError, match="NameError"):
            repl.exec(code + "undefined_name\n")
        names = repl.eval("dir()")
        assert isinstance(names, list) and "_s" not in names  # the staging buffer is gone


def test_pieces_fit_the_ring_and_rejoin() -> None:
    data = bytes(range(256)) * 3 + b"'\"\\\n" * 40
    pieces = list(_pieces(data, budget=58))
    assert b"".join(pieces) == data
    assert all(len(repr(p)) <= 58 for p in pieces)
