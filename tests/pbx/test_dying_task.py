"""A PBX task that dies from a bug (issue 19): the error is logged with its traceback, the
service stops (its other tasks cancelled, `offline` on its status topic) and `seatlink pbx`
exits with status 1, so that a supervisor restarts it instead of keeping one that only looks
alive."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from edge_support import retained, site
from pbx_support import run

from gateway.pbx.acd import Acd
from gateway.pbx.runner import build
from gateway.pbx.settings import PbxSettings


def test_a_task_that_dies_stops_the_service_and_says_offline(
        tmp_path: Path, mqtt_broker: Any, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    topics = site()
    cfg = PbxSettings(pbx="pbxdies", site=topics.site, root=topics.root,
                      broker={"host": mqtt_broker.host, "port": mqtt_broker.port},  # type: ignore[arg-type]
                      store=tmp_path / "pbx.db", compliance={"dnc": tmp_path / "dnc.db"})  # type: ignore[arg-type]  # fmt: skip
    status_topic = topics.topic("pbx_status", pbx="pbxdies")

    def bug(self: Acd, now: float) -> None:
        raise RuntimeError("injected engine bug")

    async def flow() -> None:
        async with build(cfg) as pbx:
            await pbx.wait_online()
            assert retained(mqtt_broker, status_topic)["status"] == "online"
            monkeypatch.setattr(Acd, "tick", bug)  # the engine's next turn dies
            await asyncio.wait_for(pbx.stopped(), 10)
            tasks = list(pbx._tasks)
        assert all(t.done() for t in tasks)
        engine = next(t for t in tasks if t.get_name() == "pbx-engine")
        assert isinstance(engine.exception(), RuntimeError)
        assert all(t.cancelled() for t in tasks if t is not engine)
        assert retained(mqtt_broker, status_topic)["status"] == "offline"

    with caplog.at_level(logging.ERROR, logger="seatlink.pbx"):
        run(flow, timeout=30)
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "pbx-engine" in errors[0].getMessage()
    assert errors[0].exc_info is not None
    assert str(errors[0].exc_info[1]) == "injected engine bug"


# `seatlink pbx` with its engine's tick replaced by a bug
DYING_PBX = textwrap.dedent("""
    import sys
    from gateway.cli import main
    from gateway.pbx.acd import Acd

    def bug(self, now):
        raise RuntimeError("injected engine bug")

    Acd.tick = bug
    main(["pbx", "-c", sys.argv[1]])
""")


def test_seatlink_pbx_exits_with_1_when_a_task_dies(tmp_path: Path, mqtt_broker: Any) -> None:
    cfg = tmp_path / "pbx.toml"
    cfg.write_text(f'pbx = "clidies"\nsite = "dietest"\nstore = "pbx.db"\n'
                   f'[compliance]\ndnc = "dnc.db"\n'
                   f'[broker]\nhost = "{mqtt_broker.host}"\nport = {mqtt_broker.port}\n')
    out = subprocess.run([sys.executable, "-c", DYING_PBX, str(cfg)], capture_output=True,
                         text=True, timeout=30, check=False)  # fmt: skip
    assert out.returncode == 1, out.stderr
    assert "pbx-engine stopped by an error" in out.stderr
    assert "Traceback" in out.stderr and "RuntimeError: injected engine bug" in out.stderr
    status = retained(mqtt_broker, "seatlink/v1/dietest/pbx/clidies/status")
    assert status["status"] == "offline"
