"""Scenario files and settings: a mistake anywhere refuses the whole file, naming where."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from gateway.pbx.scenario import ScenarioError, load_scenario
from gateway.pbx.settings import PbxSettings, hash_code, parse_code_hash

GOOD = '''
[[call]]
at_s = 5
queue = "sales"
talk_s = 30

[[call]]
at_s = 0
queue = "support"
number = "+862161234567"
patience_s = 60
  [[call.action]]
  after_s = 10
  do = "hold"
  [[call.action]]
  after_s = 20
  do = "transfer"
  kind = "consultative"
  seat = "s2"
  note = "wants a refund"
'''


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "scenario.toml"
    path.write_text(text)
    return path


def test_a_scenario_loads_in_arrival_order(tmp_path: Path) -> None:
    calls = load_scenario(write(tmp_path, GOOD), queues=["support", "sales"])
    assert [(c.at_s, c.queue) for c in calls] == [(0, "support"), (5, "sales")]
    hold, transfer = calls[0].actions
    assert (hold.do, hold.after_s) == ("hold", 10)
    assert (transfer.kind, transfer.seat, transfer.note) == ("consultative", "s2",
                                                             "wants a refund")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[call]\n", "not TOML"),
        ("", "call: Field required"),
        ('[[call]]\nqueue = "support"\n', "call 1 at_s: Field required"),
        ('[[call]]\nat_s = -1\nqueue = "support"\n', "call 1 at_s: Input should be greater"),
        ('[[call]]\nat_s = 0\nqueue = "nope"\n', "call 1: no queue 'nope'"),
        ('[[call]]\nat_s = 0\nqueue = "support"\ncolour = 1\n', "call 1 colour: Extra inputs"),
        ('[[call]]\nat_s = 0\nqueue = "support"\n[[call.action]]\nafter_s = 1\ndo = "fly"\n',
         "call 1 action 1 do: Input should be"),
        ('[[call]]\nat_s = 0\nqueue = "support"\n[[call.action]]\nafter_s = 1\n'
         'do = "transfer"\nkind = "blind"\n', "exactly one of seat and queue"),
        ('[[call]]\nat_s = 0\nqueue = "support"\n[[call.action]]\nafter_s = 1\n'
         'do = "transfer"\nkind = "blind"\nqueue = "gone"\n', "call 1 action 1: no queue 'gone'"),
        ('[[call]]\nat_s = 0\nqueue = "support"\n[[call.action]]\nafter_s = 1\n'
         'do = "hold"\nnote = "x"\n', "hold takes no kind, seat, queue or note"),
    ],
)
def test_a_bad_scenario_is_refused_whole_with_where_and_what(tmp_path: Path, text: str,
                                                             message: str) -> None:
    with pytest.raises(ScenarioError, match="scenario .*scenario.toml: ") as err:
        load_scenario(write(tmp_path, text), queues=["support"])
    assert message in str(err.value)


def test_a_missing_scenario_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="No such file"):
        load_scenario(tmp_path / "absent.toml", queues=["support"])


def test_settings_refuse_what_cannot_work() -> None:
    with pytest.raises(ValueError, match="arrivals.queues: no queue sales"):
        PbxSettings(arrivals={"rate_per_min": 10, "queues": {"sales": 1.0}})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="backend ami needs an \\[ami\\] section"):
        PbxSettings(backend="ami")
    with pytest.raises(ValueError, match="lognormal needs sd_s"):
        PbxSettings(arrivals={"talk": {"dist": "lognormal", "mean_s": 10}})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="is not a pbkdf2_sha256"):
        PbxSettings(compliance={"codes": {"international": ["1234"]}})  # type: ignore[arg-type]


def test_authorisation_codes_are_kept_as_hashes_only() -> None:
    stored = hash_code("4711")
    assert "4711" not in stored.split("$", 2)[2]
    assert parse_code_hash(stored).matches("4711")
    assert not parse_code_hash(stored).matches("4712")


def run(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway.cli", "pbx", *args], input=stdin,
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip


def test_the_command_line_refuses_bad_settings_and_scenarios(tmp_path: Path) -> None:
    bad = tmp_path / "pbx.toml"
    bad.write_text('ring_limit = 0\n')
    out = run("-c", str(bad))
    assert out.returncode == 2 and "ring_limit" in out.stderr
    scenario = write(tmp_path, '[[call]]\nat_s = 0\nqueue = "nope"\n')
    cfg = tmp_path / "pbx2.toml"
    cfg.write_text(f'scenario = "{scenario.name}"\n')  # relative to the settings file
    out = run("-c", str(cfg))
    assert out.returncode == 2 and "call 1: no queue 'nope'" in out.stderr
    out = run("-c", str(tmp_path / "absent.toml"))
    assert out.returncode == 2 and "not found" in out.stderr


def test_the_command_line_hashes_a_code() -> None:
    out = run("--hash-code", stdin="4711\n")
    assert out.returncode == 0
    assert parse_code_hash(out.stdout.strip()).matches("4711")
    assert run("--hash-code", stdin="12ab\n").returncode == 2


def test_the_command_line_runs_a_scenario_and_stops_cleanly(tmp_path: Path,
                                                            mqtt_broker: Any) -> None:
    scenario = write(tmp_path, '[[call]]\nat_s = 0\nqueue = "support"\npatience_s = 0.2\n')
    cfg = tmp_path / "pbx.toml"
    cfg.write_text(f'pbx = "cli1"\nsite = "clitest"\nscenario = "{scenario.name}"\n'
                   f'store = "pbx.db"\n[compliance]\ndnc = "dnc.db"\n'
                   f'[broker]\nhost = "{mqtt_broker.host}"\nport = {mqtt_broker.port}\n')
    sub = subprocess.Popen(
        ["mosquitto_sub", "-h", mqtt_broker.host, "-p", str(mqtt_broker.port), "-v",
         "-t", "seatlink/v1/clitest/call/+/event", "-C", "2", "-W", "20"],
        stdout=subprocess.PIPE, text=True)  # fmt: skip
    time.sleep(0.3)  # subscribed before the PBX publishes
    pbx = subprocess.Popen([sys.executable, "-m", "gateway.cli", "pbx", "-c", str(cfg)],
                           stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        out, _ = sub.communicate(timeout=30)
        steps = [json.loads(line.split(" ", 1)[1])["type"] for line in out.splitlines()]
        assert steps == ["enter_queue", "abandon"]
    finally:
        pbx.send_signal(signal.SIGTERM)
        _, err = pbx.communicate(timeout=15)
    assert pbx.returncode == 0, err
    assert (tmp_path / "pbx.db").exists()  # relative to the settings file
    status = subprocess.run(
        ["mosquitto_sub", "-h", mqtt_broker.host, "-p", str(mqtt_broker.port), "-C", "1",
         "-W", "5", "--retained-only", "-t", "seatlink/v1/clitest/pbx/cli1/status"],
        capture_output=True, text=True, timeout=10, check=False)  # fmt: skip
    assert json.loads(status.stdout)["status"] == "offline"
