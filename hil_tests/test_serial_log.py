"""The suite's own plumbing: a failed test leaves its board's serial log next to the report.

No board needed, so not marked hil."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from hil_tests.dut import GREEN, SerialLog
from hil_tests.serial_log import log_path, save

REPO = Path(__file__).resolve().parent.parent

FAKE_BOARD_CONFTEST = textwrap.dedent(
    """
    import pytest

    from hil_tests.conftest import pytest_runtest_makereport  # noqa: F401  (the hook on test)
    from hil_tests.serial_log import attach


    class FakeBoard:
        def serial_log_text(self):
            return "   0.001000 < 1 B 1 7 0.1.0 5EA70001 fake*0000\\n"


    @pytest.fixture
    def seat(request):
        attach(request.node, FakeBoard())
    """
)

SAMPLE_TESTS = textwrap.dedent(
    """
    def test_fails(seat):
        assert False, "the seat misbehaved"


    def test_passes(seat):
        pass


    def test_no_board():
        assert False
    """
)


def run_pytest(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    env = dict(os.environ, PYTHONPATH=path)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--rootdir", str(directory),
         str(directory), *args],
        cwd=directory, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("args", "where"),
    [((), "artifacts/hil"), (("--junitxml", "reports/junit.xml"), "reports/hil")],
    ids=["default", "next-to-junitxml"],
)
def test_a_failed_test_leaves_its_boards_serial_log(
    tmp_path: Path, args: tuple[str, ...], where: str
) -> None:
    (tmp_path / "conftest.py").write_text(FAKE_BOARD_CONFTEST)
    (tmp_path / "test_sample.py").write_text(SAMPLE_TESTS)
    result = run_pytest(tmp_path, *args)
    assert result.returncode == 1, result.stdout + result.stderr
    logs = tmp_path / where
    saved = logs / "test_sample.test_fails.serial.log"
    assert saved.read_text().splitlines() == [
        "# test: test_sample.py::test_fails",
        "   0.001000 < 1 B 1 7 0.1.0 5EA70001 fake*0000",
    ]
    assert sorted(p.name for p in logs.iterdir()) == [saved.name]  # passed / no board: none
    assert f"the board's whole serial log: {saved}" in result.stdout


def test_log_file_names_come_from_the_test_id(tmp_path: Path) -> None:
    nodeid = "hil_tests/test_ring.py::test_ring_timeout[2 rings/x]"
    expected = tmp_path / "test_ring.test_ring_timeout_2_rings_x.serial.log"
    assert log_path(tmp_path, nodeid) == expected
    path = save(tmp_path / "deeper", nodeid, "text\n")
    assert path.read_text() == f"# test: {nodeid}\ntext\n"


def test_serial_log_is_one_timeline_of_lines_notes_and_light() -> None:
    log = SerialLog()
    t0 = log.started_ns
    log.note("reset", t0 + 1_000_000)
    log.received(b"\x00Trace", t0 + 2_000_000)
    log.received(b"back\r\n1 B 1*AB", t0 + 3_000_000)
    log.sent(b"1 Q*723B\n", t0 + 4_000_000)
    text = log.render(light=[(t0 + 3_500_000, GREEN)])
    assert text.splitlines()[1:] == [
        "   0.001000 # reset",
        "   0.003000 < \\x00Traceback\\r",
        "   0.003000 < 1 B 1*AB\\",  # not ended yet: a trailing backslash
        "   0.003500 * light green",
        "   0.004000 > 1 Q*723B",
    ]
    assert log.tail() == "\\x00Traceback\\r\n1 B 1*AB"
