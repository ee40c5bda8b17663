"""`seatlink seats` as a person or a script runs it: seats on their links, commands on stdin
(one answer line each on stdout), and no stdin at all."""

from __future__ import annotations

import queue
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import serial

from gateway.seatlink import messages
from gateway.seatlink.codec import EventCode, Frame, Kind, State, Why
from gateway.seatlink.messages import Event, Snapshot
from gateway.seatlink.session import Session

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT_S = 20  # a busy machine may be slow to answer; nothing here waits that long when well


class Seats:
    """A `seatlink seats` process: its seats ("uid url" lines) and its command answers."""

    def __init__(self, *args: str, stdin: int | None = subprocess.PIPE,
                 shell_prefix: str = "") -> None:  # fmt: skip
        cmd = [sys.executable, "-m", "gateway.cli", "seats", *args]
        if shell_prefix:  # run through sh to give it an unusual stdin
            cmd = ["sh", "-c", f'{shell_prefix} exec "$@"', "sh", *cmd]
        self.proc = subprocess.Popen(cmd, stdin=stdin, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, cwd=ROOT)  # fmt: skip
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.seats = [self.line().split() for _ in range(int(args[args.index("-n") + 1]))]

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def line(self) -> str:
        try:
            line = self.lines.get(timeout=TIMEOUT_S)
        except queue.Empty:
            raise AssertionError(f"no line from seatlink seats within {TIMEOUT_S} s") from None
        assert line is not None, f"seatlink seats ended: {self.stderr()}"
        return line

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def ask(self, command: str) -> str:
        self.send(command)
        return self.line()

    def stderr(self) -> str:
        if self.proc.poll() is None or self.proc.stderr is None:
            return "(still running)"
        return self.proc.stderr.read()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if f is not None:
                f.close()


@contextmanager
def seats(*args: str, stdin: int | None = subprocess.PIPE,
          shell_prefix: str = "") -> Iterator[Seats]:  # fmt: skip
    s = Seats(*args, stdin=stdin, shell_prefix=shell_prefix)
    try:
        yield s
    finally:
        s.close()


def address(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("socket://").rsplit(":", 1)
    return host, int(port)


def hello(session: Session, boot: int) -> None:
    """Wait for the seat's hello of that boot (an older boot's may come first: resent)."""
    session.wait_for(lambda f: f.kind is Kind.HELLO and f.fields[1] == boot, timeout=TIMEOUT_S,
                     since=0)  # fmt: skip


def test_commands_on_stdin_act_on_one_running_seat() -> None:
    with seats("-n", "2") as farm:
        (uid0, url0), (uid1, url1) = farm.seats
        assert farm.ask("help").startswith("ok commands: status [SEAT] | reset SEAT")
        before = farm.ask("status 0")
        assert before.startswith(f"ok seat 0 {uid0} {url0}: boot 1, running, no host")

        # bad input: one error line each, nothing changed, the farm runs on
        for bad, says in (("frobnicate 1", "unknown command 'frobnicate'"),
                          ("reset 2", "no seat '2': the seats are 0..1"),
                          ("reset -1", "no seat '-1'"), ("reset", "usage: reset SEAT"),
                          ("unplug 0 1", "usage: unplug SEAT"),
                          ("noise 1 1.5", "bad probability '1.5'"),
                          ("noise 1 x", "bad probability 'x'"),
                          ("noise 1 nan", "bad probability 'nan'"),
                          ("noise 1 0.1 up", "bad direction 'up'"),
                          ("load -2", "bad load '-2'"), ("load fast", "bad load 'fast'"),
                          ("status 0 1", "usage: status [SEAT]")):  # fmt: skip
            answer = farm.ask(bad)
            assert answer.startswith("error: ") and says in answer, (bad, answer)
        farm.send("# a comment, then a blank line: no answer")
        farm.send("")
        assert farm.ask("status 0") == before
        assert farm.ask("status 1").startswith(f"ok seat 1 {uid1} {url1}: boot 1, running")

        # unplug: the connected host reads EOF, new connections are refused
        with socket.create_connection(address(url0), timeout=TIMEOUT_S) as sock:
            sock.settimeout(TIMEOUT_S)
            assert sock.recv(4096)  # the farm took it: the seat's hello comes (resent)
            assert farm.ask("unplug 0") == f"ok seat 0 {uid0}: unplugged"
            while sock.recv(4096):
                pass
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(address(url0), timeout=TIMEOUT_S).close()
        assert farm.ask("unplug 0") == f"ok seat 0 {uid0}: unplugged already"
        assert ", unplugged, 1 connection so far," in farm.ask("status 0")

        # replug on the same url; then a reset behind the open connection: a new hello
        assert farm.ask("replug 0") == f"ok seat 0 {uid0}: plugged in at {url0}"
        port = serial.serial_for_url(url0, timeout=0.01)
        try:
            session = Session(port, read_timeout=0.01)
            session.sync()  # the seat answers on the same url
            assert farm.ask("reset 0") == f"ok seat 0 {uid0}: reset, boot 2"
            hello(session, 2)
        finally:
            port.close()
        assert farm.ask(f"reset {uid1.lower()}") == f"ok seat 1 {uid1}: reset, boot 2"

        # noise and load
        assert farm.ask("noise 1 0.01") == \
            f"ok seat 1 {uid1}: noise to_seat 0.01, to_gateway 0.01 " \
            "(corrupted so far: to_seat 0, to_gateway 0)"  # fmt: skip
        assert farm.ask("noise 1 0 to-seat").startswith(
            f"ok seat 1 {uid1}: noise to_seat 0, to_gateway 0.01 ")
        assert farm.ask("noise 1 0").startswith(f"ok seat 1 {uid1}: noise to_seat 0, "
                                                "to_gateway 0 ")  # fmt: skip
        assert farm.ask("load") == "ok load paused"
        assert farm.ask("load 4") == "ok load 4 presses/s per seat"
        assert farm.ask("status").startswith("ok 2 seats, load 4/s per seat: ")
        assert farm.ask("load 0") == "ok load paused"

        assert farm.ask("quit") == "ok stopping"
        assert farm.proc.wait(timeout=TIMEOUT_S) == 0, farm.stderr()


@pytest.mark.parametrize("stdin", ["devnull", "closed"])
def test_without_stdin_the_seats_run_on(stdin: str) -> None:
    prefix = "exec 0<&-;" if stdin == "closed" else ""
    with seats("-n", "1", "--load-hz", "2", "--load-after-connect", stdin=subprocess.DEVNULL,
               shell_prefix=prefix) as farm:  # fmt: skip
        (uid, url), = farm.seats
        port = serial.serial_for_url(url, timeout=0.01)
        try:
            session = Session(port, read_timeout=0.01)
            hello(session, 1)
            # pressing since this host connected: help events come
            session.wait_for(lambda f: f.kind is Kind.EVENT, timeout=TIMEOUT_S)
        finally:
            port.close()
        farm.proc.send_signal(signal.SIGTERM)
        assert farm.proc.wait(timeout=TIMEOUT_S) == 0, farm.stderr()
        assert farm.lines.get(timeout=TIMEOUT_S) is None  # no answer without a command


def test_the_agent_commands_lift_answer_and_hang_up_at_a_seat() -> None:
    """lift, ready, answer and hang act on the seat's desk inputs as an agent's hands; the
    seat, a host on its link, reports each as the firmware does (why: 2 hanger, 5 ANSWER)."""

    def event(code: EventCode, state: State | None = None, a: int | None = None
              ) -> Callable[[Frame], bool]:  # fmt: skip
        def match(f: Frame) -> bool:
            if f.kind is not Kind.EVENT:
                return False
            e = Event.from_frame(f)
            return e.code is code and state in (None, e.state) and a in (None, e.a)

        return match

    with seats("-n", "2") as farm:
        (uid0, url0), _ = farm.seats
        assert "lift SEAT | hang SEAT | answer SEAT | ready SEAT [MS] | wrap SEAT" in \
            farm.ask("help")  # fmt: skip
        assert farm.ask("status 0").endswith(", headset on its hanger")  # an empty desk
        assert farm.ask("status").endswith(", 0 headsets lifted")
        for bad, says in (("lift 2", "no seat '2': the seats are 0..1"),
                          ("hang x", "no seat 'x'"), ("answer", "usage: answer SEAT"),
                          ("ready 0 0", "bad press length '0'"),
                          ("ready 0 fast", "bad press length 'fast'"),
                          ("wrap 0 1", "usage: wrap SEAT")):  # fmt: skip
            answer = farm.ask(bad)
            assert answer.startswith("error: ") and says in answer, (bad, answer)
        port = serial.serial_for_url(url0, timeout=0.01)
        try:
            session = Session(port, read_timeout=0.01)
            session.sync()
            snap = Snapshot.from_frame(session.wait_for(lambda f: f.kind is Kind.SNAPSHOT,
                                                        timeout=TIMEOUT_S, since=0))
            assert not snap.off_hook  # the headset rests on its hanger
            assert farm.ask("lift 0") == f"ok seat 0 {uid0}: headset lifted"
            assert farm.ask("lift 0") == f"ok seat 0 {uid0}: headset lifted already"
            session.wait_for(event(EventCode.HOOK, a=1), timeout=TIMEOUT_S)
            assert farm.ask("status 0").endswith(", headset lifted")
            assert farm.ask("status").endswith(", 1 headsets lifted")
            assert farm.ask("ready 0") == f"ok seat 0 {uid0}: READY pressed"
            session.wait_for(event(EventCode.STATE, State.READY), timeout=TIMEOUT_S)
            session.send(messages.offer(41))
            session.wait_for(event(EventCode.STATE, State.RINGING), timeout=TIMEOUT_S)
            assert farm.ask("answer 0") == f"ok seat 0 {uid0}: ANSWER pressed"
            session.wait_for(event(EventCode.STATE, State.TALKING, Why.ANSWER_BUTTON),
                             timeout=TIMEOUT_S)  # fmt: skip
            assert farm.ask("hang 0") == f"ok seat 0 {uid0}: headset on its hanger"
            session.wait_for(event(EventCode.RELEASED, a=Why.HOOK), timeout=TIMEOUT_S)
            session.wait_for(event(EventCode.STATE, State.ACW), timeout=TIMEOUT_S)
            assert farm.ask("wrap 0") == f"ok seat 0 {uid0}: WRAP pressed"
            session.wait_for(event(EventCode.STATE, State.READY, Why.BUTTON), timeout=TIMEOUT_S)
            assert farm.ask("ready 0 3500") == f"ok seat 0 {uid0}: READY pressed for 3500 ms"
            session.wait_for(event(EventCode.STATE, State.LOGGED_OUT), timeout=TIMEOUT_S)
        finally:
            port.close()
        assert farm.ask("quit") == "ok stopping"
        assert farm.proc.wait(timeout=TIMEOUT_S) == 0, farm.stderr()
