"""Run the whole system on embedded defaults: seats, gateway, PBX, core, API and wallboard."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from pathlib import Path
from types import FrameType

from gateway.seatlink import messages
from gateway.seatlink.codec import EventCode, Kind, Reason, SettingKey, State
from gateway.seatlink.session import Session
from gateway.virtual_seat import VirtualSeat

COLOURS = {0: "off", 1: "red", 2: "green", 3: "yellow", 4: "blue", 5: "magenta",
           6: "cyan", 7: "white"}
READY_BIT, HANGER_BIT, ANSWER_BIT = 2, 1, 16  # gateway.virtual_seat's IN_READY, ...


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seats", type=int, default=24, metavar="N",
                        help="virtual seats with agents at them (default 24)")
    parser.add_argument("--emulated", type=int, default=2, metavar="N",
                        help="emulated micro:bits (QEMU, the seat image) with agents at them "
                             "(default 2; 0: none)")  # fmt: skip
    parser.add_argument("--rate", type=float, default=20.0, metavar="PER_MIN",
                        help="callers arriving a minute (default 20)")
    parser.add_argument("--port", type=int, default=8080,
                        help="the API's port (default 8080; a free one if taken)")
    parser.add_argument("--keep", type=Path, metavar="DIR",
                        help="run in DIR and keep it (settings, logs, databases)")
    parser.add_argument("--one-seat", action="store_true",
                        help="instead: one seat's firmware at work, frame by frame")
    parser.add_argument("--quiet-light", action="store_true",
                        help="with --one-seat: print state changes only, not every light")


def run(args: argparse.Namespace) -> int:
    if args.one_seat:
        return _one_seat(args)
    from gateway.demo.system import DemoError, DemoOptions, DemoSystem

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}

    def say(text: str) -> None:
        print(f"seatlink demo: {text}", flush=True)

    options = DemoOptions(seats=args.seats, rate_per_min=args.rate, api_port=args.port,
                          work=args.keep, keep=args.keep is not None, emulated=args.emulated,
                          say=say)  # fmt: skip
    boards = (f", {args.emulated} emulated micro:bit{'s' if args.emulated != 1 else ''} (QEMU)"
              if args.emulated else "")  # fmt: skip
    print(f"seatlink demo: starting mosquitto, {args.seats} virtual seats{boards} with agents, "
          "the edge gateway, the PBX, the core and the API...", flush=True)  # fmt: skip
    system = DemoSystem(options)
    try:
        try:
            info = system.start()
        except DemoError as exc:
            print(f"seatlink demo: {exc}", file=sys.stderr)
            return 1
        fleet = (f"seatlink inventory -i {info.work / 'inventory.toml'} list "
                 f"--broker 127.0.0.1:{info.broker_port} --site demo")
        release = json.loads(info.release.read_text())["firmware"]
        # two virtual seats (a micro:bit v1 takes a whole image at the desk, docs/fleet.md)
        targets = "s001 s002" if args.seats >= 2 else "s001"
        update = (f"seatlink update --broker 127.0.0.1:{info.broker_port} --site demo "
                  f"--bundle {info.release} {targets}")
        user, password = info.supervisor
        admin, admin_password = info.admin
        first = next(iter(info.agents.items()), None)
        agents = (f"{len(info.agents)} robot agents, each with an agent account of its own, "
                  "signed in at its seat" + ("" if first is None else
                                             f" (e.g. {first[1].name} at {first[0]})"))
        if info.microbits:
            firmware = info.microbits[0].firmware
            rows = "\n".join(f"  {m.seat}  board {m.uid}  {m.url}  QEMU pid {m.pid}"
                             for m in info.microbits)  # fmt: skip
            microbits = (f"\nEmulated micro:bits (QEMU; firmware {firmware} frozen into "
                         f"MicroPython 1.9.2), agents at them on their pins:\n{rows}\n")
        else:
            microbits = "".join(f"\n  {note}\n" for note in info.notes)
        print(f"""
  wallboard   {info.url}/wallboard/
  API docs    {info.url}/docs
  supervisor  {user}  password {password}
  admin       {admin}  password {admin_password}
  agents      {agents}
  broker      127.0.0.1:{info.broker_port} (site "demo")
  work dir    {info.work}{'' if args.keep else ' (removed at the end)'}
  processes   {', '.join(f'{name} {pid}' for name, pid in info.pids.items())}
{microbits}
The fleet as facilities see it:
  {fleet}
A remote firmware update, seat by seat with roll-back, to a release stamped {release}:
  {update}

Callers arrive about {args.rate:g} a minute. The robot agents wear their headsets and answer
with its call button, end some calls themselves, and now and then hang the headset up for a
break (the seat shows them away). A seat a supervisor sets Not Ready stays so until the
supervisor releases it or its agent presses READY: the demo's robots return to Ready after
20 to 40 s, as an agent would. Ctrl-C stops everything.
""", flush=True)  # fmt: skip
        while not stop.wait(1.0):
            failed = system.failed()
            if failed:
                print(f"seatlink demo: {failed}", file=sys.stderr)
                return 1
        print("seatlink demo: stopping...", flush=True)
        return 0
    finally:
        system.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _one_seat(args: argparse.Namespace) -> int:
    start = time.monotonic()

    def stamp() -> str:
        return f"{time.monotonic() - start:6.1f}s"

    def light(rgb: int) -> None:
        if not args.quiet_light:
            print(f"{stamp()}  light  {COLOURS[rgb]}", flush=True)

    print("seatlink demo: one seat running the real firmware (virtual board, host clock).")
    print("Ctrl-C stops it. `seatlink demo` without --one-seat runs the whole system.\n")
    with VirtualSeat(on_light=light) as seat:
        session = Session(seat.port)
        session.sync()
        # a short working day: shorter ACW and hold limits than the seeds' defaults
        session.send(messages.settings({SettingKey.ACW_S: 6, SettingKey.HOLD_REMIND_S: 5,
                                        SettingKey.HOLD_LIMIT_S: 10}))
        signed_in = messages.agent_signed_in(True)
        script: list[tuple[float, str, object]] = [
            (1, "the agent signs in at the desk (the gateway's N 1)", signed_in),
            (1.5, "agent lifts the headset off its hanger (wears it)", ("clear", HANGER_BIT)),
            (2, "agent presses READY (login)", ("press", READY_BIT)),
            (4, "PBX offers call 101", messages.offer(101)),
            (7, "agent presses the headset's call button (answers)", ("press", ANSWER_BIT)),
            (10, "PBX puts the caller on hold", messages.hold(101)),
            (22, "PBX takes the caller off hold", messages.hold(101, on=False)),
            (25, "agent presses the call button (ends the call)", ("press", ANSWER_BIT)),
            (33, "PBX offers call 102 (the agent lets it ring)", messages.offer(102)),
            (50, "agent presses READY", ("press", READY_BIT)),
            (51, "agent hangs the headset on its hanger and steps away (away in 10 s)",
             ("set", HANGER_BIT)),
            (64, "demo over", None),
        ]
        try:
            for at, what, action in script:
                while time.monotonic() - start < at:
                    for frame in session.poll(0.05):
                        _show(stamp(), frame.kind, frame.fields)
                print(f"{stamp()}  >>>    {what}", flush=True)
                if isinstance(action, tuple):
                    verb, bit = action
                    if verb == "press":
                        seat.board.bits |= bit
                        time.sleep(0.1)
                        seat.board.bits &= ~bit
                    elif verb == "set":
                        seat.board.bits |= bit
                    else:
                        seat.board.bits &= ~bit
                elif isinstance(action, messages.Command):
                    session.send(action)
        except KeyboardInterrupt:
            print("\nstopped")
    return 0


def _show(stamp: str, kind: Kind, fields: tuple[int | str, ...]) -> None:
    if kind is Kind.EVENT and isinstance(fields[0], int):
        code, state, reason = (int(x) for x in fields[:3])
        why = f" ({Reason(reason).name.lower()})" if state == State.NOT_READY and reason else ""
        name, now = EventCode(code).name.lower(), State(state).name.lower()
        print(f"{stamp}  event  {name:<16} state {now}{why}", flush=True)
    elif kind is Kind.HELLO:
        print(f"{stamp}  hello  {' '.join(str(f) for f in fields)}", flush=True)
