"""`seatlink flash --image`: a whole image onto micro:bit v1 boards through their DAPLink drive,
then the board's hello (or, for a plain MicroPython image, its REPL) checked.

Real parts: emulated boards in QEMU whose drive directories flash what is copied into them
(gateway.rig.drive), in this process or in a `seatlink emulate` process; the seat image
built by gateway.image; virtual seats for the hello. A DAPLink drive that refuses an image or
never comes back cannot exist here: a directory this test makes act like one stands in.
"""

from __future__ import annotations

import asyncio
import json
import os
import selectors
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.cli import run
from gateway.fleet.flash import FlashError, firmware_version
from gateway.fleet.image_flash import (
    ImageJob,
    ImageTarget,
    _pyocd_said,
    await_hello,
    default_image,
    find_drives,
    flash_image_board,
    pyocd_available,
    read_drive,
    serial_of_drive,
)
from gateway.rig import EmulatedBoard, RawRepl
from gateway.rig.drive import DETAILS, FAIL, HTM
from gateway.rig.qemu import unavailable_reason
from gateway.virtual_farm import SeatFarm
from tests.edge.edge_support import (
    Collector,
    edge_and_collector,
    settings,
    site,
    until,
    write_inventory,
)
from tests.rig.image_support import dated_image

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def qemu() -> None:
    reason = unavailable_reason()
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)


def _lines(proc: subprocess.Popen[str], count: int, timeout: float) -> list[dict[str, Any]]:
    assert proc.stdout is not None
    out: list[dict[str, Any]] = []
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        while len(out) < count:
            assert selector.select(timeout), f"only {len(out)} of {count} boards announced"
            line = proc.stdout.readline()
            assert line, f"emulate exited with {proc.wait()}"
            out.append(json.loads(line))
    return out


def _put(url: str, name: str) -> None:
    with RawRepl.open(url) as repl:
        repl.interrupt(deadline=5)
        repl.write_file(name, b"x = 1\n")


def _table_rows(out: str) -> list[list[str]]:
    return [[c.strip() for c in line.split("│")[1:-1]] for line in out.splitlines()
            if "│" in line and ("socket://" in line or "/dev/" in line)]  # fmt: skip


# --- through the drives of `seatlink emulate` -----------------------------------------------


@pytest.mark.hil
def test_cli_flashes_two_emulated_boards_through_their_drives(
        qemu: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    image = dated_image(tmp_path / "dated.hex", "2099-12-31")
    drives = tmp_path / "media"
    drives.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "gateway.cli", "emulate", "-n", "2",
                             "--no-install", "--drives", str(drives)],
                            cwd=ROOT, stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        boards = _lines(proc, 2, timeout=60)
        assert [Path(b["drive"]).name for b in boards] == ["MICROBIT", "MICROBIT1"]
        for b in boards:
            _put(b["serial"], "before.py")
        # the drives name their serial ports (DETAILS.TXT), so no PORT is needed
        assert [d.serial for d in find_drives([tmp_path])] == [b["serial"] for b in boards]
        report = tmp_path / "report.json"
        code = run(["flash", "--image", str(image), "--drive", boards[0]["drive"],
                    "--drive", boards[1]["drive"], "--check", "repl", "--no-progress",
                    "--report", str(report)])  # fmt: skip
        out = capsys.readouterr().out
        assert code == 0, out
        results = json.loads(report.read_text())
        for b, r in zip(boards, results, strict=True):
            assert r["ok"] and r["port"] == b["serial"] and r["drive"] == b["drive"]
            assert r["type"] == "microbit" and r["uid"] == b["uid"]  # what its hello says
            assert r["firmware"].endswith("MicroPython v1.9.2-34-gd64154c73 on 2099-12-31")
            assert r["files"] == []  # the full flash erased the filesystem
        rows = _table_rows(out)
        assert [row[1] for row in rows] == [b["serial"] for b in boards]
        assert all(row[2] == "drive" and row[-1] == "ok" for row in rows)
        assert f"image {image.name}" in out
        # the emulate process is fine and its boards are on the same URLs
        assert proc.poll() is None
        with RawRepl.open(boards[1]["serial"]) as repl:
            assert repl.exec("import os\nprint(os.listdir())")[0] == "[]\n"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
        assert list(drives.iterdir()) == []  # the drives went with the boards
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# --- the seat image: flashed, then its hello ------------------------------------------------


@pytest.fixture
def stock_board(qemu: None) -> Iterator[EmulatedBoard]:
    with EmulatedBoard() as board:
        yield board


@pytest.mark.hil
def test_the_seat_image_comes_back_with_a_hello_on_its_version(
        stock_board: EmulatedBoard, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    drive = stock_board.open_drive()
    _put(stock_board.serial_url, "before.py")
    report = tmp_path / "r.json"
    # no --image: this checkout's image (gateway.image.build_image), its version expected
    code = run(["flash", "--drive", str(drive.path), "--no-progress", "--report", str(report)])
    out = capsys.readouterr().out
    assert code == 0, out
    (result,) = json.loads(report.read_text())
    assert result["firmware"] == firmware_version() and result["type"] == "microbit"
    assert result["uid"] == stock_board.uid and result["seat"] == ""
    assert "built image" in out and f"(firmware {firmware_version()})" in out
    uid = result["uid"]

    # again, as a file, with its seat from the inventory: the board keeps its id
    built = default_image(None)  # from the cache now
    assert built.version == firmware_version()
    inventory = tmp_path / "inventory.toml"
    inventory.write_text(f'[[seat]]\nseat = "s7"\nboard = "{uid}"\n')
    code = run(["flash", "--image", str(built.path), "--firmware-version", built.version,
                "--drive", str(drive.path), "--no-progress", "-i", str(inventory),
                "--report", str(report)])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0, out
    (result,) = json.loads(report.read_text())
    assert (result["uid"], result["seat"], result["firmware"]) == (uid, "s7", built.version)

    # the same file said to be another version: the board's hello gives it away
    code = run(["flash", "--image", str(built.path), "--firmware-version", "9.9.9", "--drive",
                str(drive.path), "--no-progress"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 1
    assert f"the board came back on {firmware_version()}, not the image's 9.9.9" in out
    assert drive.failures == 0 and drive.flashes == 3


@pytest.mark.hil
def test_a_gateways_link_follows_the_board_across_a_flash(
        stock_board: EmulatedBoard, tmp_path: Path, mqtt_broker: Any) -> None:  # fmt: skip
    """The serial URL stays across a flash: a gateway bridging the seat sees its link drop,
    opens it again, and the seat is online on the new version. The flash erased the board's
    boot count: the new boot's hello still reaches the broker, under a boot of its own (a
    second boot 1 was taken for a resend of the first, and its frames dropped)."""
    drive = stock_board.open_drive()
    first, second = default_image(None), default_image("0.1.1+flash")
    result = flash_image_board(ImageTarget(stock_board.serial_url, drive=drive.path),
                               ImageJob(image=first))  # fmt: skip
    assert result.ok, result.error
    topics = site()
    write_inventory(tmp_path / "inventory.toml", {"s0": result.uid})
    cfg = settings(tmp_path, mqtt_broker, topics, [stock_board.serial_url],
                   drain_process=False)  # fmt: skip

    def health(sub: Collector) -> str | None:
        return (sub.last("seat_health", seat="s0") or {}).get("firmware")

    async def scenario() -> None:
        async with edge_and_collector(cfg, mqtt_broker, topics) as sub:
            await until(lambda: health(sub) == first.version, 30, "s0 online on the image")
            # copied by hand, as onto a real drive, while the gateway holds the port
            shutil.copyfile(second.path, drive.path / "seatlink-microbit.hex")
            await until(lambda: health(sub) == second.version, 60,
                        "s0 back on the new image through the same link")  # fmt: skip
            assert (sub.last("seat_availability", seat="s0") or {}).get("status") == "online"
            assert drive.flashes == 2 and stock_board.serial_url == cfg.links[0]
            await until(lambda: len(hellos(sub)) == 2, 30, "the new boot's hello published")
            first_boot, second_boot = (h["boot"] for h in hellos(sub))
            assert first_boot != second_boot

    def hellos(sub: Collector) -> list[dict[str, Any]]:
        return [e for e in sub.events("s0") if e["type"] == "hello"]

    asyncio.run(scenario())


def test_await_hello_reads_a_seats_hello_or_heartbeat() -> None:
    with SeatFarm(1) as farm, SeatFarm(1, board_name="microbit", first_uid=0x5EA70100) as mb:
        seen = await_hello(farm.seats[0].url, timeout=10)
        assert (seen.version, seen.uid) == (firmware_version(), farm.seats[0].uid)
        assert seen.board in ("virtual", None)  # None: its heartbeat came first
        seen = await_hello(mb.seats[0].url, timeout=10)
        assert seen.uid == mb.seats[0].uid and seen.board in ("microbit", None)


# --- DAPLink's answers: FAIL.TXT, or no drive coming back ------------------------------------


class StandInDrive:
    """A directory made to act like a DAPLink drive: it takes the .hex copied in, goes away
    and comes back without it, with FAIL.TXT holding `fail` (or never comes back)."""

    def __init__(self, path: Path, *, fail: str | None, comes_back: bool = True) -> None:
        self.path = path
        path.mkdir()
        (path / HTM).write_text("<html></html>")
        (path / DETAILS).write_text("# DAPLink Firmware\r\nUnique ID: 9900AB\r\n")
        self.fail, self.comes_back = fail, comes_back
        self.taken: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(0.02):
            hexes = [p for p in self.path.iterdir() if p.suffix == ".hex"]
            if not hexes or not hexes[0].read_bytes().rstrip().endswith(b":00000001FF"):
                continue
            (self.path / DETAILS).unlink()
            self.taken.append(hexes[0].name)
            if not self.comes_back:
                return
            hexes[0].unlink()
            if self.fail is not None:
                (self.path / FAIL).write_text(self.fail)
            (self.path / DETAILS).write_text("Unique ID: 9900AB\r\n")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def test_daplinks_refusal_and_a_drive_that_never_comes_back(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        qemu_available: None) -> None:  # fmt: skip
    image = dated_image(tmp_path / "seat.hex", "2099-12-31")
    refusing = StandInDrive(tmp_path / "MICROBIT", fail="error: The interface firmware FAILED "
                            "to reset/halt the target MCU\r\ntype: target\r\n")
    silent = StandInDrive(tmp_path / "MICROBIT1", fail=None, comes_back=False)
    try:
        t0 = time.monotonic()
        code = run(["flash", "--image", str(image), "--drive", str(refusing.path), "--drive",
                    str(silent.path), "socket://127.0.0.1:1", "socket://127.0.0.1:2",
                    "--drive-timeout", "2", "--no-progress"])  # fmt: skip
        out = capsys.readouterr().out
        assert code == 1
        assert time.monotonic() - t0 < 30
        assert refusing.taken == ["seat.hex"] and silent.taken == ["seat.hex"]
        assert ("socket://127.0.0.1:1: DAPLink refused the image: error: The interface firmware "
                "FAILED to reset/halt the target MCU type: target") in out
        assert ("socket://127.0.0.1:2: the drive did not come back within 2 s after the copy"
                in out)
        assert [row[-1] for row in _table_rows(out)] == ["FAILED", "FAILED"]
    finally:
        refusing.close()
        silent.close()


# --- refused before any board is touched ------------------------------------------------------


def _drive_dir(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / DETAILS).write_text("Unique ID: 9900CD\r\nSerial: socket://127.0.0.1:1\r\n")
    (path / HTM).write_text("<html></html>")
    return path


def test_bad_images_and_bad_usage_are_refused_and_touch_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    drive = _drive_dir(tmp_path / "MICROBIT")
    damaged = tmp_path / "damaged.hex"
    damaged.write_bytes(b":100000000040002011010000130100001501000096\n:00000001FF\n")
    plain = tmp_path / "notadrive"
    plain.mkdir()
    good = tmp_path / "good.hex"
    good.write_bytes(b":100000000040002011010000130100001501000054\n:00000001FF\n")
    cases: list[tuple[list[str], str]] = [
        (["--image", str(damaged), "--drive", str(drive)],
         "image refused, no board touched: " + f"{damaged}: line 1: checksum 96, the record's "
         "is 54 (damaged)"),
        (["--image", str(tmp_path / "none.hex"), "--drive", str(drive)],
         "cannot read it: No such file or directory"),
        (["--image", str(good)], "give each board's MICROBIT drive (--drive PATH"),
        (["--image", str(good), "--drive", str(plain)],
         f"no board touched: {plain}: not a micro:bit's DAPLink drive (no DETAILS.TXT and "
         "MICROBIT.HTM)"),
        (["--image", str(good), "--drive", str(tmp_path / "gone")], "no such directory"),
        (["--image", str(good), "--drive", str(drive), "--drive", str(drive)],
         "a drive is given twice"),
        (["--image", str(good), "--drive", str(drive), "socket://a:1", "socket://a:2"],
         "1 drive(s) for 2 PORT(s)"),
        (["--image", str(good), "--drive", str(drive), "--pyocd"], "choose one"),
        (["--image", str(good), "--drive", str(drive), "--bundle", str(good)],
         "an image goes alone"),
        (["--image", str(good), "--drive", str(drive), "-i", "x.toml", "--require-bound"],
         "--require-bound cannot go with an image"),
        (["--image", str(good), "--drive", str(drive), "--no-reset"], "DAPLink resets"),
        (["--image", str(good), "--drive", str(drive), "--hello-timeout", "0"],
         "--hello-timeout and --drive-timeout must be above 0"),
        (["--pyocd", "--image", str(good), "--probe", "A", "--probe", "B", "socket://a:1"],
         "2 --probe for 1 PORT(s)"),
    ]  # fmt: skip
    if not pyocd_available():
        cases.append((["--pyocd", "--image", str(good), "socket://a:1"],
                      "pyOCD is not installed here (pip install pyocd)"))  # fmt: skip
    for args, reason in cases:
        assert run(["flash", *args]) == 2, args
        err = capsys.readouterr().err
        assert reason in err, (args, err)
        assert err.count("\n") == 1, err
    assert sorted(p.name for p in drive.iterdir()) == [DETAILS, HTM]  # nothing copied

    # without --image, the image comes from gateway.image: a checkout without it says so
    monkeypatch.setitem(sys.modules, "gateway.image", None)
    with pytest.raises(FlashError, match="cannot build the micro:bit v1 image"):
        default_image(None)
    assert run(["flash", "--drive", str(drive)]) == 2
    assert "give one with --image FILE.hex" in capsys.readouterr().err


def test_dry_run_says_what_it_would_do(tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    drive = _drive_dir(tmp_path / "MICROBIT")
    good = tmp_path / "good.hex"
    good.write_bytes(b":100000000040002011010000130100001501000054\n:00000001FF\n")
    assert run(["flash", "--image", str(good), "--drive", str(drive), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"would copy {good} to {drive}/ (DAPLink 9900CD)" in out
    assert sorted(p.name for p in drive.iterdir()) == [DETAILS, HTM]
    assert run(["flash", "--image", str(good), "--pyocd", "--probe", "0240000034544e45",
                "socket://a:1", "--dry-run"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert ("would pyocd flash --no-wait --target nrf51 --erase chip --format hex --uid "
            f"0240000034544e45 {good}") in out


def test_pyocds_own_words_make_the_boards_failure() -> None:
    """What pyOCD 0.46 printed here with no probe plugged in (exit status 1)."""
    stdout = "No connected debug probe matches unique ID '0240000034544e45'\n"
    stderr = "0000424 E No target device available [load_cmd]\n"
    assert _pyocd_said(stdout, stderr) == ("No connected debug probe matches unique ID "
                                           "'0240000034544e45'; No target device available")
    assert _pyocd_said("", "") == "no output"


# --- finding drives and their serial ports -----------------------------------------------------


def test_drives_are_found_under_the_mount_roots(tmp_path: Path) -> None:
    media = tmp_path / "media"
    one = _drive_dir(media / "ann" / "MICROBIT")
    two = _drive_dir(media / "MICROBIT1")
    (media / "ann" / "USBSTICK").mkdir()
    (media / "ann" / "USBSTICK" / DETAILS).write_text("not a micro:bit: no MICROBIT.HTM")
    found = find_drives([media, tmp_path / "nothing-here"])
    assert [d.path for d in found] == [two, one]
    assert {d.unique_id for d in found} == {"9900CD"}
    assert read_drive(one).serial == "socket://127.0.0.1:1"


def test_a_real_drives_serial_port_is_found_through_sysfs(tmp_path: Path) -> None:
    """The tty under the same USB device as the drive's block device (sysfs as Linux lays it
    out for a micro:bit: one USB device, a mass-storage and a CDC interface)."""
    mount = tmp_path / "MICROBIT"
    mount.mkdir()
    sys_root = tmp_path / "sys"
    usb = sys_root / "devices" / "pci0000:00" / "usb1" / "1-2"
    block = usb / "1-2:1.0" / "host4" / "target4:0:0" / "4:0:0:0" / "block" / "sdb"
    tty = usb / "1-2:1.1" / "tty" / "ttyACM3"
    other = sys_root / "devices" / "pci0000:00" / "usb1" / "1-3"
    for path in (block, tty, other / "1-3:1.0" / "tty" / "ttyACM0"):
        path.mkdir(parents=True)
    for dev in (usb, other):
        (dev / "idVendor").write_text("0d28\n")
    dev = os.stat(mount).st_dev
    (sys_root / "dev" / "block").mkdir(parents=True)
    (sys_root / "dev" / "block" / f"{os.major(dev)}:{os.minor(dev)}").symlink_to(block)
    (sys_root / "class" / "tty" / "ttyACM0").mkdir(parents=True)
    (sys_root / "class" / "tty" / "ttyACM0" / "device").symlink_to(other / "1-3:1.0")
    (sys_root / "class" / "tty" / "ttyACM3").mkdir()
    (sys_root / "class" / "tty" / "ttyACM3" / "device").symlink_to(usb / "1-2:1.1")
    assert serial_of_drive(mount, sys_root=sys_root) == "/dev/ttyACM3"
    assert serial_of_drive(mount, sys_root=tmp_path / "empty") is None
