"""The whole system on one machine, on embedded defaults: `seatlink demo` (issue 7).

Design requirements:
- Nothing to configure. Every part runs as the product runs it, as its own process with a
  settings file written here into a work directory:
  - the broker: mosquitto, on a free loopback port (never the machine's 1883);
  - the desks: virtual seats running the real firmware, with the agent robot at them
    (gateway.demo.desks);
  - emulated micro:bits (`--emulated N`, default 2): micro:bit v1 boards in QEMU booting the
    seat image (gateway.image, built or taken from its cache), with the same robot at them
    acting through their input pins (gateway.demo.microbits). Where QEMU or the image's
    build tools are missing the demo says what is missing and runs without them;
  - the edge gateway (`seatlink edge`), bridging every seat, virtual and emulated, each bound
    in the inventory with a location;
  - the PBX connector (`seatlink pbx`), with callers arriving all the time (Poisson);
  - the policy/KPI core (`seatlink core`) on SQLite;
  - the supervisor API and wallboard (`seatlink api`), with two personal demo accounts
    whose passwords are made up at start and printed, and a personal agent account for
    the robot at every seat (gateway.demo.agents.people), each signed in at its seat
    through the API's sign-in route (POST /me/signin with the agent's own login), as the
    desk's page does: the edge then lets the seat take its agent's READY.
- Every child gets a parent-death signal (gateway.rig.spawn), so nothing outlives the demo
  even when it is killed. `stop()` ends them in the reverse order of their start (SIGTERM,
  then SIGKILL after STOP_S), and removes the work directory unless asked to keep it. The
  micro:bits process stops its own QEMUs; a QEMU still there after it (its pid and its
  command line as recorded) is killed by pid.
- A part that does not come up is a DemoError naming it and its log, after everything
  started so far has been stopped.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from gateway.demo.agents import Person, people
from gateway.fleet.flash import firmware_version, write_bundle
from gateway.rig.spawn import spawn

SITE = "demo"
ROOT = "seatlink"
# short after-call work, so the wallboard moves; the robots wear their headsets, and one
# who takes a break hangs it on its hanger: the seat shows it away after away_s (10 s)
SEAT_DEFAULTS = {"acw_s": 10}
SIGN_IN_S = 30.0  # for each agent's sign-in, the API up (the floor learns the seats)
# the demo's accounts: personal names, as the product asks for
SUPERVISOR = ("sam.okafor", "Sam Okafor", "supervisor")
ADMIN = ("ada.lovelace", "Ada Lovelace", "admin")


class DemoError(RuntimeError):
    """A part of the demo could not start; the message names it and where its log is."""


@dataclass
class DemoOptions:
    seats: int = 24
    rate_per_min: float = 20.0  # callers arriving, every queue together
    api_host: str = "127.0.0.1"
    api_port: int = 8080  # 0, or taken: a free one
    work: Path | None = None  # default: a new temporary directory
    keep: bool = False  # leave the work directory (logs, databases) behind
    seed: int = 7
    emulated: int = 2  # emulated micro:bits (QEMU) beside the virtual seats; 0: none
    say: Callable[[str], None] | None = None  # progress and notes (e.g. no QEMU), as they come


@dataclass
class Microbit:
    """One emulated micro:bit of the demo."""

    seat: str
    uid: str
    url: str  # socket://127.0.0.1:PORT, where the edge's link reaches its serial port
    pid: int  # its QEMU
    firmware: str  # the firmware version its hello says (the image's)


@dataclass
class DemoInfo:
    url: str
    supervisor: tuple[str, str]  # username, password
    admin: tuple[str, str]
    agents: dict[str, Person]  # seat -> the robot agent's account, signed in there
    work: Path
    broker_port: int
    release: Path  # a firmware release to try the remote update with (seatlink update)
    pids: dict[str, int] = field(default_factory=dict)
    microbits: list[Microbit] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # e.g. why there are no emulated boards


class DemoSystem:
    """`with DemoSystem(options) as demo: demo.info.url`."""

    START_S = 60.0  # per part
    STOP_S = 10.0

    def __init__(self, options: DemoOptions | None = None) -> None:
        self.options = options or DemoOptions()
        self._children: list[tuple[str, subprocess.Popen[bytes], Path]] = []
        self._work: Path | None = None
        self._made_work = False
        self._qemu: list[tuple[int, bytes]] = []  # the micro:bits' QEMUs: pid, command line
        self._notes: list[str] = []
        self.info: DemoInfo | None = None

    def __enter__(self) -> DemoSystem:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- start ------------------------------------------------------------------------------

    def start(self) -> DemoInfo:
        o = self.options
        if o.seats < 1 or o.seats > 500:
            raise DemoError(f"--seats {o.seats}: 1 to 500 seats")
        if o.emulated < 0 or o.emulated > 16:
            raise DemoError(f"--emulated {o.emulated}: 0 to 16 emulated micro:bits")
        work = o.work or Path(tempfile.mkdtemp(prefix="seatlink-demo-"))
        self._made_work = o.work is None
        work.mkdir(parents=True, exist_ok=True)
        self._work = work
        image = self._image() if o.emulated else None
        broker_port = self._broker(work)
        seats = self._desks(work, broker_port)
        microbits = self._microbits(work, broker_port, image, first=len(seats) + 1) \
            if image is not None else []  # fmt: skip
        seats += [{"uid": m.uid, "url": m.url, "name": "emulated micro:bit"} for m in microbits]
        self._edge(work, broker_port, seats)
        self._pbx(work, broker_port)
        self._core(work, broker_port)
        info = self._api(work, broker_port, [f"s{i + 1:03d}" for i in range(len(seats))])
        info.pids = {name: proc.pid for name, proc, _ in self._children}
        info.microbits = microbits
        info.notes = list(self._notes)
        self.info = info
        return info

    def _say(self, text: str) -> None:
        if self.options.say is not None:
            self.options.say(text)

    def _note(self, text: str) -> None:
        self._notes.append(text)
        self._say(text)

    def _image(self) -> Path | None:
        """The seat image for the emulated micro:bits, or None (and a note saying what is
        missing) where they cannot run."""
        missing = ("qemu-system-arm is not installed (Debian package qemu-system-arm)"
                   if shutil.which("qemu-system-arm") is None else None)  # fmt: skip
        if missing is None:
            from gateway.image import ImageError, build_image

            try:
                image = build_image(log=self._say)
            except (ImageError, OSError) as exc:
                missing = f"the micro:bit image could not be built: {exc}"
            else:
                return image.path
        self._note(f"no emulated micro:bits: {missing}. `make deps` installs what they need; "
                   "the demo runs with the virtual seats only (--emulated 0 skips them).")
        return None

    def _start(self, name: str, argv: list[str], work: Path) -> subprocess.Popen[bytes]:
        log = work / f"{name}.log"
        proc = spawn(argv, log_path=log)
        self._children.append((name, proc, log))
        return proc

    def _wait(self, name: str, ready: object, what: str) -> None:
        deadline = time.monotonic() + self.START_S
        proc, log = next((p, lg) for n, p, lg in self._children if n == name)
        while not ready():  # type: ignore[operator]
            if proc.poll() is not None:
                raise DemoError(f"the {name} stopped with status {proc.returncode} before "
                                f"{what}; its log: {log}\n{_tail(log)}")  # fmt: skip
            if time.monotonic() > deadline:
                raise DemoError(f"the {name} did not get {what} within {self.START_S:.0f} s; "
                                f"its log: {log}\n{_tail(log)}")  # fmt: skip
            time.sleep(0.1)

    def _broker(self, work: Path) -> int:
        exe = shutil.which("mosquitto") or ("/usr/sbin/mosquitto"
                                            if Path("/usr/sbin/mosquitto").exists() else None)
        if exe is None:
            # the core speaks MQTT 5 (acknowledgement after commit); the pure-Python brokers
            # on PyPI speak 3.1.1 only, so there is no embedded stand-in for mosquitto
            raise DemoError("mosquitto is not installed: `make deps` installs it (Debian "
                            "package mosquitto)")  # fmt: skip
        port = _free_port()
        conf = work / "mosquitto.conf"
        conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n"
                        "persistence false\nlog_dest stderr\n")  # fmt: skip
        self._start("broker", [exe, "-c", str(conf)], work)
        self._wait("broker", lambda: _listening(port), f"its port {port} open")
        return port

    def _desks(self, work: Path, port: int) -> list[dict[str, str]]:
        seats_map = work / "seats.json"
        self._start("desks", [sys.executable, "-m", "gateway.demo.desks",
                              "--seats", str(self.options.seats), "--broker-port", str(port),
                              "--site", SITE, "--root", ROOT, "--map", str(seats_map),
                              "--store", str(work / "desks"),
                              "--seed", str(self.options.seed)], work)  # fmt: skip
        self._wait("desks", seats_map.exists, "its seats listening")
        seats: list[dict[str, str]] = [{"uid": s["uid"], "url": s["url"]}
                                       for s in json.loads(seats_map.read_text())["seats"]]
        return seats

    def _microbits(self, work: Path, port: int, hex_path: Path, first: int) -> list[Microbit]:
        names = [f"s{first + i:03d}" for i in range(self.options.emulated)]
        boards_map = work / "microbits.json"
        self._start("microbits", [sys.executable, "-m", "gateway.demo.microbits",
                                  "--hex", str(hex_path),
                                  *(arg for name in names for arg in ("--seat", name)),
                                  "--broker-port", str(port), "--site", SITE, "--root", ROOT,
                                  "--map", str(boards_map),
                                  "--seed", str(self.options.seed + 1)], work)  # fmt: skip
        self._wait("microbits", boards_map.exists, "its boards running")
        boards = [Microbit(seat=b["seat"], uid=b["uid"], url=b["url"], pid=int(b["pid"]),
                           firmware=b["firmware"])
                  for b in json.loads(boards_map.read_text())["seats"]]  # fmt: skip
        for b in boards:
            try:
                self._qemu.append((b.pid, Path(f"/proc/{b.pid}/cmdline").read_bytes()))
            except OSError:
                pass  # gone already: the micro:bits process says why, failed() reports it
        return boards

    def _edge(self, work: Path, port: int, seats: list[dict[str, str]]) -> None:
        lines = ["[defaults]", *(f"{k} = {v}" for k, v in SEAT_DEFAULTS.items())]
        for i, seat in enumerate(seats):
            row, desk = divmod(i, 8)  # eight desks a row
            lines += ["[[seat]]", f'seat = "s{i + 1:03d}"', f'board = "{seat["uid"]}"',
                      f'location = "Floor 1, row {chr(65 + row % 26)}, desk {desk + 1}"']
            if "name" in seat:
                lines.append(f'name = "{seat["name"]}"')
        (work / "inventory.toml").write_text("\n".join(lines) + "\n")
        (work / "links.json").write_text(json.dumps({"seats": [{"url": seat["url"]}
                                                               for seat in seats]}) + "\n")
        cfg = work / "edge.toml"
        cfg.write_text(f'gateway = "edge-1"\nsite = "{SITE}"\nroot = "{ROOT}"\n'
                       'links_file = "links.json"\ninventory = "inventory.toml"\n'
                       'outbox = "edge-outbox.db"\nhealth_interval_s = 2.0\n'
                       f'[broker]\nhost = "127.0.0.1"\nport = {port}\n')  # fmt: skip
        self._start("edge", _seatlink("edge", cfg), work)

    def _pbx(self, work: Path, port: int) -> None:
        cfg = work / "pbx.toml"
        cfg.write_text(
            f'pbx = "pbx-1"\nsite = "{SITE}"\nroot = "{ROOT}"\nstore = "pbx.db"\n'
            f"seed = {self.options.seed}\n"
            f'[broker]\nhost = "127.0.0.1"\nport = {port}\n'
            '[queues.support]\nseats = "*"\n[queues.sales]\nseats = "*"\n'
            '[compliance]\ndnc = "dnc.db"\n'
            f"[arrivals]\nrate_per_min = {self.options.rate_per_min}\n"
            "[arrivals.queues]\nsupport = 3\nsales = 1\n"
            '[arrivals.patience]\ndist = "exponential"\nmean_s = 60.0\n'
            '[arrivals.talk]\ndist = "lognormal"\nmean_s = 45.0\nsd_s = 20.0\nmin_s = 5.0\n')
        self._start("pbx", _seatlink("pbx", cfg), work)

    def _core(self, work: Path, port: int) -> None:
        cfg = work / "core.toml"
        cfg.write_text(f'core = "core-1"\nsite = "{SITE}"\nroot = "{ROOT}"\n'
                       'store = "core.db"\nkpi_interval_s = 2.0\n'
                       f'[broker]\nhost = "127.0.0.1"\nport = {port}\n')  # fmt: skip
        self._start("core", _seatlink("core", cfg), work)

    def _api(self, work: Path, port: int, seats: list[str]) -> DemoInfo:
        o = self.options
        api_port = o.api_port if o.api_port and not _listening(o.api_port, o.api_host) \
            else _free_port()  # fmt: skip
        cfg = work / "api.toml"
        cfg.write_text(f'api = "api-1"\nsite = "{SITE}"\nroot = "{ROOT}"\npbx = "pbx-1"\n'
                       f'host = "{o.api_host}"\nport = {api_port}\naccounts = "api.db"\n'
                       'store = "core.db"\n'
                       f'[broker]\nhost = "127.0.0.1"\nport = {port}\n')  # fmt: skip
        accounts = {}
        for username, full_name, role in (ADMIN, SUPERVISOR):
            password = _password()
            done = subprocess.run(
                _seatlink("api", cfg) + ["--add-user", username, "--role", role,
                                         "--full-name", full_name, "--no-change"],
                env={**os.environ, "SEATLINK_API_NEW_PASSWORD": password},
                capture_output=True, text=True, timeout=60)  # fmt: skip
            if done.returncode != 0:
                raise DemoError(f"could not add the demo account {username}: {done.stderr}")
            accounts[role] = (username, password)
        agents = dict(zip(seats, people(len(seats)), strict=True))
        passwords = self._agent_accounts(cfg, agents)
        self._start("api", _seatlink("api", cfg), work)
        url = f"http://{o.api_host}:{api_port}"
        self._wait("api", lambda: _healthy(url), f"{url}/health answering")
        self._sign_in(url, agents, passwords)
        # this checkout's firmware stamped as a release: the seats run the unstamped one
        release = work / "release.json"
        write_bundle(release, kinds=["microbit"], version=f"{firmware_version()}+demo")
        return DemoInfo(url=url, supervisor=accounts["supervisor"], admin=accounts["admin"],
                        agents=agents, work=work, broker_port=port,
                        release=release)  # fmt: skip

    def _agent_accounts(self, cfg: Path, agents: dict[str, Person]) -> dict[str, str]:
        """A personal agent account for the robot at each seat, with its agent id, added as
        `seatlink api --add-user NAME --role agent --agent ID --no-change` adds one (the
        same store calls, in this process: one process for them all, not one each).
        Returns each username's password, made up here."""
        from gateway.api.accounts import AccountError, Role, StoreError, open_accounts
        from gateway.api.settings import load_settings

        passwords = {p.username: _password() for p in agents.values()}
        try:
            with open_accounts(load_settings(cfg).accounts) as store:
                for p in agents.values():
                    store.create_user(username=p.username, password=passwords[p.username],
                                      full_name=p.name, role=Role.AGENT, agent=p.agent)
                    store.audit(action="user_create", outcome="ok", actor=None,
                                target=p.username, detail={"role": "agent", "agent": p.agent,
                                                           "via": "seatlink demo"})
        except (AccountError, StoreError, OSError, ValueError) as exc:
            raise DemoError(f"could not add the robot agents' accounts: {exc}") from exc
        return passwords

    def _sign_in(self, url: str, agents: dict[str, Person], passwords: dict[str, str]) -> None:
        """Each robot agent logs in to the API with its own account and signs in at its
        seat (POST /me/signin), as at the desk's page: the API publishes the retained
        seat/{seat}/agent, the edge tells the seat, and the robot there puts its headset on
        and presses READY. A seat the API's floor has not heard of yet (404) is tried again
        until SIGN_IN_S."""

        def sign_in(seat: str, p: Person) -> None:
            deadline = time.monotonic() + SIGN_IN_S
            token = _token(url, p.username, passwords[p.username])
            while True:
                status, answer = _post_json(url + "/me/signin", {"seat": seat}, token)
                if status == 200:
                    return
                if status != 404 or time.monotonic() > deadline:
                    raise DemoError(f"the API did not sign {p.name} ({p.username}) in at "
                                    f"{seat}: {status} {answer}")  # fmt: skip
                time.sleep(0.5)

        with ThreadPoolExecutor(max_workers=8, thread_name_prefix="sign-in") as pool:
            for done in [pool.submit(sign_in, seat, p) for seat, p in agents.items()]:
                done.result()
        self._say(f"{len(agents)} robot agents signed in at their seats through the API")

    # --- stop -------------------------------------------------------------------------------

    def stop(self) -> None:
        """Every child, newest first: SIGTERM, then SIGKILL after STOP_S."""
        while self._children:
            name, proc, _ = self._children.pop()
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(self.STOP_S)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)
        self._stop_qemu()
        if self._work is not None and self._made_work and not self.options.keep:
            shutil.rmtree(self._work, ignore_errors=True)
            self._work = None

    def _stop_qemu(self) -> None:
        """The micro:bits process stops its QEMUs; one that is still there (that process
        killed, and no parent-death signal) is killed here, by its pid, once its command
        line shows it is the one that was started."""
        qemu, self._qemu = self._qemu, []
        for pid, cmdline in qemu:
            deadline = time.monotonic() + self.STOP_S
            while _same_process(pid, cmdline) and time.monotonic() < deadline:
                time.sleep(0.05)  # a parent-death signal on its way
            if _same_process(pid, cmdline):
                os.kill(pid, signal.SIGKILL)

    def failed(self) -> str | None:
        """The first part that ended on its own, with its status, or None."""
        for name, proc, log in self._children:
            if proc.poll() is not None:
                return f"the {name} stopped with status {proc.returncode}; its log: {log}"
        return None


def _seatlink(command: str, cfg: Path) -> list[str]:
    return [sys.executable, "-m", "gateway.cli", command, "-c", str(cfg)]


def _password() -> str:
    # the seeds' policy: letters, digits and special characters, 10 or more
    return f"Demo-{secrets.token_hex(4)}-{secrets.randbelow(90) + 10}!"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _listening(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def _token(url: str, username: str, password: str) -> str:
    """An API login (POST /auth/token, the OAuth2 password form): the bearer token."""
    form = urllib.parse.urlencode({"username": username, "password": password}).encode()
    request = urllib.request.Request(url + "/auth/token", data=form, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return str(json.loads(answer.read())["access_token"])
    except (OSError, ValueError, KeyError) as exc:
        raise DemoError(f"the API refused the login of {username}: {exc}") from exc


def _post_json(url: str, body: object, token: str) -> tuple[int, str]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json",
                                              "Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, answer.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")
    except OSError as exc:
        return 0, str(exc)


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/health", timeout=2) as answer:
            return bool(json.loads(answer.read()).get("broker"))
    except (OSError, ValueError):
        return False


def _same_process(pid: int, cmdline: bytes) -> bool:
    """Process `pid` runs with `cmdline` and has not ended (a zombie has no command line)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes() == cmdline
    except OSError:
        return False


def _tail(log: Path, lines: int = 15) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
