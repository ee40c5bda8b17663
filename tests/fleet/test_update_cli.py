"""`seatlink update`: a remote firmware update asked for from the command line and followed
to its end, against a real edge gateway process, virtual seats and a real mosquitto."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.cli import run
from gateway.fleet.flash import save_bundle
from gateway.virtual_farm import SeatFarm
from tests.edge.edge_support import (
    config_file,
    release_bundle,
    retained,
    settings,
    site,
    write_inventory,
)


@pytest.fixture
def gateway(tmp_path: Path, mqtt_broker: Any) -> Iterator[tuple[SeatFarm, list[str]]]:
    """Two virtual seats behind an edge gateway process; yields (the farm, the command's
    --broker, --site and --root arguments)."""
    with SeatFarm(2) as farm, _edge(tmp_path, mqtt_broker, farm) as site_args:
        yield farm, site_args


@contextlib.contextmanager
def _edge(tmp_path: Path, mqtt_broker: Any, farm: SeatFarm) -> Iterator[list[str]]:
    """An edge gateway process for the farm's seats (s0, s1, ...), once they are online."""
    topics = site()
    seats = {f"s{i}": seat.uid for i, seat in enumerate(farm.seats)}
    write_inventory(tmp_path / "inventory.toml", seats)
    cfg = config_file(tmp_path / "edge.toml",
                      settings(tmp_path, mqtt_broker, topics, [s.url for s in farm.seats]))
    proc = subprocess.Popen([sys.executable, "-m", "gateway.cli", "edge", "-c", str(cfg)],
                            stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        for seat in seats:
            topic = topics.topic("seat_availability", seat=seat)
            while not _online(mqtt_broker, topic):
                assert time.monotonic() < deadline, f"{seat} never came online"
                time.sleep(0.2)
        yield ["--broker", f"{mqtt_broker.host}:{mqtt_broker.port}",
               "--site", topics.site, "--root", topics.root]
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _online(broker: Any, topic: str) -> bool:
    try:
        return retained(broker, topic, timeout=1).get("status") == "online"
    except AssertionError:  # nothing retained yet
        return False


def test_update_two_seats_then_a_bad_release_rolls_back(
        gateway: tuple[SeatFarm, list[str]], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    farm, site_args = gateway
    good = tmp_path / "good.json"
    save_bundle(good, release_bundle("0.1.1"))
    assert run(["update", "s0", "s1", "--bundle", str(good), *site_args, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {s: b["stage"] for s, b in out["seats"].items()} == {"s0": "done", "s1": "done"}
    assert out["jobs"]["gw1"]["status"] == "done"

    bad = tmp_path / "bad.json"
    save_bundle(bad, release_bundle("0.2.0", broken=True))
    code = run(["update", "s1", "s0", "--bundle", str(bad), "--hello-deadline", "5", *site_args])
    captured = capsys.readouterr()
    assert code == 1
    assert "s1 (gw1): rolling back: no hello from 0.2.0 within 5 s" in captured.err
    table = captured.out
    assert "rolled_back" in table and "skipped" in table and "0.1.1" in table


def test_refusals_send_nothing(gateway: tuple[SeatFarm, list[str]], tmp_path: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    farm, site_args = gateway
    boots = [s.boot for s in farm.seats]
    damaged = tmp_path / "damaged.json"
    doc = release_bundle("0.1.1")
    doc["boards"]["microbit"]["files"][1]["sha256"] = "0" * 64
    save_bundle(damaged, doc)
    cases = [
        (["s0", "--bundle", str(damaged)], "fw1: SHA-256 differs"),
        (["s0", "nobody"], "no gateway reports seat nobody"),
        (["s0", "s0"], "a seat is listed twice"),
        (["s0", "--hello-deadline", "1"], "--hello-deadline is 5-600 s"),
        (["s/0"], "seat id 's/0' is not"),
    ]
    for argv, message in cases:
        assert run(["update", *argv, *site_args]) == 2, argv
        err = capsys.readouterr().err
        assert message in err, (argv, err)
    assert run(["update", "s0", "--broker", "127.0.0.1:1", *site_args[2:]]) == 2
    assert "cannot reach the broker at 127.0.0.1:1" in capsys.readouterr().err
    assert [s.boot for s in farm.seats] == boots


def test_a_microbit_v1_seat_is_refused_with_how_it_is_updated(
        tmp_path: Path, mqtt_broker: Any, capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    """A seat whose hello says `microbit` takes a whole image at its desk: its gateway
    refuses the job, and the command says how the seat is updated instead."""
    with SeatFarm(1, board_name="microbit") as farm, \
            _edge(tmp_path, mqtt_broker, farm) as site_args:  # fmt: skip
        boot = farm.seats[0].boot
        assert run(["update", "s0", *site_args, "--timeout", "30"]) == 2
        captured = capsys.readouterr()
        assert ("seatlink update: gateway gw1 refused the job: s0: micro:bit v1 seats take a "
                "whole image: seatlink flash --image FILE.hex --drive PATH at the desk "
                "(DAPLink)") in captured.err
        assert farm.seats[0].boot == boot
