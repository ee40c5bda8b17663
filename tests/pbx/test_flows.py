"""Whole calls through the real path: the simulated PBX publishes seat commands, the edge
gateway carries them to virtual seats running the real firmware bundle, agents signed in at
their seats answer and end calls at the desk (the headset's call button, or the headset
lifted off and put on its hanger), and every step comes back as a call event on a real
mosquitto.

Ring cadence is 1 s here (the seat's shortest) so that ring limits pass in seconds; the
hold test waits the real 35 s, since the seat's hold limit (30 s) is what it checks."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from edge_support import until
from pbx_support import IN_READY, call_site, run

from gateway.pbx.calls import Action
from gateway.pbx.compliance import DoNotCallList
from gateway.seatlink.codec import Why

FAST = {"ring_ms": 1000}


def test_answer_by_the_hanger_hold_past_the_limit_release_acw_ready(tmp_path: Path,
                                                                    mqtt_broker: Any) -> None:
    async def flow() -> None:
        async with call_site(tmp_path, mqtt_broker, 2, queues={"support": ["s0", "s1"]},
                             **FAST) as site:  # fmt: skip
            # s1 has waited longest; its agent leaves the headset on its hanger between calls
            # (a call within away_s: lifting it answers)
            await site.login("s1", wear=False)
            await site.login("s0")
            call = site.pbx.arrive("support", number="+862161234567", talk_s=45.0,
                                   actions=(Action(after_s=1, do="hold"),
                                            Action(after_s=36, do="unhold")))
            offer = await site.until_step(call, "offer")
            assert offer["seat"] == "s1"
            await site.until_state("s1", "ringing")
            await asyncio.sleep(1.2)  # into the second ring
            site.lift("s1")
            answer = await site.until_step(call, "answer")
            assert answer["seat"] == "s1" and answer["rings"] == 2
            await site.until_state("s1", "talking")
            assert site.why("s1", "talking") == Why.HOOK  # the hanger answered
            assert 1.0 <= answer["ring_s"] < 2.0 and answer["number"] == "***4567"
            await site.until_step(call, "hold")
            await site.until_state("s1", "hold")
            # the seat itself raises the over-limit alert after 30 s on hold
            await until(lambda: site.state("s1").get("hold_over_limit"), 35, "over the limit")
            alerts = [e for e in site.sub.events("s1") if e["type"] == "event"
                      and e["data"]["event"] == "hold_over_limit"]  # fmt: skip
            assert len(alerts) == 1 and alerts[0]["data"]["a"] >= 30_000
            unhold = await site.until_step(call, "unhold", timeout=10)
            assert 34.5 <= unhold["hold_s"] <= 36.5
            await site.until_state("s1", "talking")
            release = await site.until_step(call, "release", timeout=15)
            assert release["by"] == "caller" and release["seat"] == "s1"
            assert 44 <= release["talk_s"] <= 46 and 34.5 <= release["hold_s"] <= 36.5
            await site.until_state("s1", "acw")
            await site.until_state("s1", "ready", timeout=5)  # after acw_s
            assert site.steps(call) == [("enter_queue", None), ("offer", "s1"),
                                        ("answer", "s1"), ("hold", "s1"), ("unhold", "s1"),
                                        ("release", "s1")]  # fmt: skip
            assert [e["step"] for e in site.calls(call)] == [1, 2, 3, 4, 5, 6]

    run(flow)


def test_no_answer_requeues_to_the_next_agent(tmp_path: Path, mqtt_broker: Any) -> None:
    async def flow() -> None:
        async with call_site(tmp_path, mqtt_broker, 3, queues={"support": ["s0", "s1", "s2"]},
                             **FAST) as site:  # fmt: skip
            await site.login("s0", "s1")
            call = site.pbx.arrive("support")
            await site.until_step(call, "offer")
            rona = await site.until_step(call, "ring_no_answer", timeout=8)
            assert rona["seat"] == "s0" and rona["rings"] == 3 and rona["detail"] == "rang out"
            await site.until_state("s0", "not_ready")  # the seat paused itself (RONA)
            assert site.state("s0")["reason"] == "no_answer"
            await site.until_state("s1", "ringing")
            await site.answer("s1")  # the headset's call button
            answer = await site.until_step(call, "answer")
            assert answer["seat"] == "s1"
            await site.until_state("s1", "talking")
            assert site.why("s1", "talking") == Why.ANSWER_BUTTON
            site.hang_up("s1")  # the agent ends it: the headset back on its hanger
            release = await site.until_step(call, "release")
            assert release["by"] == "agent"
            await site.until_state("s1", "acw")
            released = [e for e in site.sub.events("s1") if e["type"] == "event"
                        and e["data"]["event"] == "released"]  # fmt: skip
            assert [e["data"]["a"] for e in released] == [Why.HOOK]
            assert site.steps(call) == [("enter_queue", None), ("offer", "s0"),
                                        ("ring_no_answer", "s0"), ("offer", "s1"),
                                        ("answer", "s1"), ("release", "s1")]  # fmt: skip

    run(flow)


def test_callers_abandon_in_the_queue_and_while_ringing(tmp_path: Path,
                                                        mqtt_broker: Any) -> None:
    async def flow() -> None:
        async with call_site(tmp_path, mqtt_broker, 1, queues={"support": ["s0"]},
                             **FAST) as site:  # fmt: skip
            queued = site.pbx.arrive("support", patience_s=1.5)  # nobody logged in
            abandon = await site.until_step(queued, "abandon", timeout=5)
            assert abandon["by"] == "caller" and 1.4 <= abandon["wait_s"] <= 2.0
            await site.login("s0")
            ringing = site.pbx.arrive("support", patience_s=1.5)
            await site.until_state("s0", "ringing")
            await site.until_step(ringing, "abandon", timeout=5)
            await site.until_state("s0", "ready")  # the offer was withdrawn
            assert site.steps(ringing) == [("enter_queue", None), ("offer", "s0"),
                                           ("abandon", "s0")]  # fmt: skip
            assert site.pbx.acd.calls == {}

    run(flow)


def test_blind_and_consultative_transfers(tmp_path: Path, mqtt_broker: Any) -> None:
    async def flow() -> None:
        async with call_site(tmp_path, mqtt_broker, 3, queues={"support": ["s0", "s1", "s2"]},
                             **FAST) as site:  # fmt: skip
            await site.login("s0")
            call = site.pbx.arrive("support")
            await site.until_state("s0", "ringing")
            await site.answer("s0")
            await site.until_step(call, "answer")
            await site.login("s1", "s2")

            # blind to s1, nobody answers: after 5 rings it comes back to s0 (seed 004)
            result = await site.command({"v": 1, "id": "t1", "command": "transfer",
                                         "call": call, "kind": "blind", "seat": "s1",
                                         "note": "address change, verified"})
            assert result["status"] == "done"
            await site.until_state("s0", "hold")
            await site.until_state("s1", "ringing")
            back = await site.until_step(call, "transfer_return", timeout=9)
            assert back["seat"] == "s0" and back["target"]["seat"] == "s1"
            rona = [e for e in site.calls(call) if e["type"] == "ring_no_answer"][-1]
            assert rona["rings"] == 5
            await site.until_state("s0", "talking")

            # consultative to s2: s2 answers, talks to s0, then s0 completes
            result = await site.command({"v": 1, "id": "t2", "command": "transfer",
                                         "call": call, "kind": "consultative", "seat": "s2",
                                         "note": "refund over the limit"})
            assert result["status"] == "done"
            transfer = [e for e in site.calls(call) if e["type"] == "transfer"][-1]
            assert transfer["target"] == {"v": 1, "kind": "consultative", "seat": "s2",
                                          "queue": None, "note": "refund over the limit"}
            await site.until_state("s2", "ringing")
            await site.answer("s2")
            await until(lambda: [e for e in site.calls(call) if e["type"] == "answer"
                                 and e["seat"] == "s2"], 5, "s2 answers")  # fmt: skip
            await site.until_state("s0", "hold")  # the caller waits while the agents talk
            result = await site.command({"v": 1, "id": "t3", "command": "complete",
                                         "call": call})  # fmt: skip
            assert result["status"] == "done"
            await site.until_state("s0", "acw")
            # s2's own state message may trail the PBX's answer event on a busy machine
            await site.until_state("s2", "talking")

            # blind to s0 (Ready again after ACW), who answers: s2 is released
            await site.until_state("s0", "ready", timeout=5)
            await site.command({"v": 1, "id": "t4", "command": "transfer", "call": call,
                                "kind": "blind", "seat": "s0"})
            await site.until_state("s0", "ringing")
            await site.answer("s0")
            await site.until_state("s2", "acw")
            await site.until_state("s0", "talking")
            kinds = [e["type"] for e in site.calls(call)]
            assert kinds.count("transfer") == 3 and kinds.count("transfer_return") == 1
            releases = [(e["seat"], e["detail"]) for e in site.calls(call)
                        if e["type"] == "release"]  # fmt: skip
            assert releases == [("s0", "transferred"), ("s2", "transferred")]

    run(flow)


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b"not json", "not JSON"),
        ({"v": 2, "id": "x", "command": "hold", "call": 1}, "payload version 2"),
        ({"v": 1, "id": "x", "command": "hold", "call": 99999998}, "no call 99999998"),
        ({"v": 1, "id": "x", "command": "transfer", "call": 1, "kind": "blind"},
         "exactly one of seat and queue"),
        ({"v": 1, "id": "x", "command": "fly", "call": 1}, "command"),
    ],
)
def test_bad_call_control_is_refused_with_a_reason(tmp_path: Path, mqtt_broker: Any,
                                                   body: Any, detail: str) -> None:
    async def flow() -> None:
        async with call_site(tmp_path, mqtt_broker, 1, queues={"support": ["s0"]}) as site:
            before = dict(site.pbx.acd.counts)
            if isinstance(body, bytes):
                topic = site.topics.topic("pbx_cmd", pbx="pbx1")
                import aiomqtt
                async with aiomqtt.Client(mqtt_broker.host, mqtt_broker.port) as c:
                    await c.publish(topic, body, qos=1)
                await until(lambda: site.sub.on("pbx_cmd_result", pbx="pbx1"), 5)
                result = site.sub.on("pbx_cmd_result", pbx="pbx1")[-1]
            else:
                result = await site.command(body)
            assert result["status"] == "invalid" and detail in result["detail"]
            assert dict(site.pbx.acd.counts) == before and site.pbx.acd.calls == {}

    run(flow)


# 10:00 in Shanghai: inside the calling window, whenever the test runs
DAYTIME = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)


def decisions(site: Any) -> list[dict[str, Any]]:
    return site.sub.on("compliance_decision", pbx="pbx1")


def test_a_manual_dial_passes_the_gate_and_hangs_up_after_six_rings(tmp_path: Path,
                                                                    mqtt_broker: Any) -> None:
    async def flow() -> None:
        async with call_site(tmp_path, mqtt_broker, 1, queues={"sales": ["s0"]},
                             wall=lambda: DAYTIME, dialer={"callees": {"answer_p": 0.0}},
                             **FAST) as site:  # fmt: skip
            await site.login("s0")
            denied = await site.command({"v": 1, "id": "d1", "command": "dial", "seat": "s0",
                                         "number": "+86 21 6123 4567"})  # no caller ID
            assert denied["status"] == "denied" and denied["call"] is None
            assert denied["detail"].startswith("caller_id: ")
            await until(lambda: decisions(site), 5, "the decision")
            d = decisions(site)[0]
            assert (d["allowed"], d["rule"], d["seed"], d["number"], d["seat"]) == (
                False, "caller_id", "000 TCPA 1)", "***4567", "s0")
            assert "6123" not in d["reason"]  # masked in the reason too

            done = await site.command({"v": 1, "id": "d2", "command": "dial", "seat": "s0",
                                       "number": "+86 21 6123 4567",
                                       "caller_id": "+86 21 6000 0000"})  # fmt: skip
            assert done["status"] == "done"
            call = done["call"]
            await until(lambda: len(decisions(site)) == 2, 5)
            assert decisions(site)[1]["allowed"] is True and decisions(site)[1]["call"] == call
            no_answer = await site.until_step(call, "no_answer", timeout=10)
            assert no_answer["rings"] == 6 and 5.9 <= no_answer["ring_s"] <= 6.5
            assert site.steps(call) == [("dial", "s0"), ("no_answer", "s0")]
            assert site.pbx.acd.seat_call("s0") is None  # the agent is free again
            stored = site.pbx.outbound.decisions.recent(10)
            assert [(s.decision.number, s.call) for s in stored] == [
                ("+862161234567", call), ("+862161234567", None)]  # newest first

            # a number that does not parse is denied by the gate, with its reason
            bad = await site.command({"v": 1, "id": "d3", "command": "dial", "seat": "s0",
                                      "number": "12ab", "caller_id": "+86 21 6000 0000"})
            assert bad["status"] == "denied" and bad["detail"].startswith("parse: ")
            # and a Do-Not-Call request for one is refused, the list unchanged
            dnc = await site.command({"v": 1, "id": "d4", "command": "dnc_add",
                                      "number": "not a number"})  # fmt: skip
            assert dnc["status"] == "invalid" and "not a number" in dnc["detail"]
            ok = await site.command({"v": 1, "id": "d5", "command": "dnc_add",
                                     "number": "+86 21 6123 4567"})  # fmt: skip
            assert ok["status"] == "done"
            again = await site.command({"v": 1, "id": "d6", "command": "dial", "seat": "s0",
                                        "number": "021 6123 4567",
                                        "caller_id": "+86 21 6000 0000"})  # fmt: skip
            assert again["status"] == "denied" and again["detail"].startswith("dnc: ")
            unknown = await site.command({"v": 1, "id": "d7", "command": "dial", "seat": "s9",
                                          "number": "+86 21 6123 4500",
                                          "caller_id": "+86 21 6000 0000"})  # fmt: skip
            assert unknown["status"] == "invalid" and "no seat 's9'" in unknown["detail"]
            assert len(site.pbx.outbound.decisions.recent(10)) == 4  # no decision for s9

    run(flow)


def test_a_campaign_dials_through_the_gate_and_connects_answers(tmp_path: Path,
                                                                mqtt_broker: Any) -> None:
    campaign = tmp_path / "renewals.toml"
    campaign.write_text(
        'name = "renewals"\ncaller_id = "+862160000000"\nqueue = "sales"\n'
        '[[number]]\nnumber = "+86 21 6123 4501"\nname = "Li Wei"\n'
        '[[number]]\nnumber = "+86 21 6123 4502"\nname = "Wang Fang"\n'
        '[[number]]\nnumber = "+86 800 810 1234"\nname = "a hotline"\n')
    DoNotCallList(tmp_path / "dnc.db").add("+86 21 6123 4502", at=DAYTIME)

    async def flow() -> None:
        async with call_site(
            tmp_path, mqtt_broker, 1, queues={"sales": ["s0"]}, wall=lambda: DAYTIME,
            dialer={"campaigns": [campaign], "tick_s": 0.2,
                    "callees": {"answer_p": 1.0, "answer_rings": (2, 2),
                                "talk": {"dist": "fixed", "mean_s": 5.0}}},
            **FAST,
        ) as site:  # fmt: skip
            await site.login("s0")
            # one Ready agent, a new campaign: one line at a time (no drop is affordable yet)
            await until(lambda: decisions(site), 10, "the first decision")
            first = decisions(site)[0]
            assert (first["allowed"], first["rule"], first["number"]) == (True, "allowed",
                                                                            "***4501")
            call = first["call"]
            answer = await site.until_step(call, "answer", timeout=10)
            assert answer["seat"] == "s0" and answer["campaign"] == "renewals"
            assert answer["rings"] == 2
            await site.until_state("s0", "talking")  # connected to the seat
            assert len(decisions(site)) == 1  # nobody else Ready: nothing more dialled
            release = await site.until_step(call, "release", timeout=10)
            assert release["by"] == "caller"
            await site.until_state("s0", "acw")
            await until(lambda: len(decisions(site)) == 3, 10, "the other two decisions")
            rules = [(d["number"], d["allowed"], d["rule"], d["seed"]) for d in decisions(site)]
            assert rules[1:] == [("***4502", False, "dnc", "000 TCPA 3)"),
                                 ("***1234", False, "blocked_class", "000 TCPA 4)")]
            health = site.pbx.health().campaigns["renewals"]
            assert (health.dialled, health.denied, health.answered, health.dropped,
                    health.remaining) == (1, 2, 1, 0, 0)  # fmt: skip

    run(flow)


def test_a_seat_with_nobody_signed_in_refuses_its_login_until_an_agent_signs_in(
        tmp_path: Path, mqtt_broker: Any) -> None:  # fmt: skip
    async def flow() -> None:
        async with call_site(tmp_path, mqtt_broker, 1, queues={"support": ["s0"]},
                             **FAST) as site:  # fmt: skip
            await site.until_state("s0", "logged_out")
            site.lift("s0")  # the headset on: READY, with nobody signed in at the desk
            # until the gateway has told the seat "nobody" (sign_in_wait_s after it
            # subscribed) the seat takes a login: press until it refuses one
            for _ in range(20):
                await site.press("s0", IN_READY)
                await until(lambda: site.refusals("s0") or site.changes("s0", "ready"), 5,
                            "the login refused, or taken before the wait")  # fmt: skip
                if site.refusals("s0"):
                    break
                await site.press("s0", IN_READY, hold_s=3.5)  # taken too soon: log out
                await site.until_state("s0", "logged_out")
            refused = site.refusals("s0")
            assert refused and refused[-1]["data"]["a"] == 1  # 1: nobody signed in
            assert site.state("s0")["state"] == "logged_out"
            ready = len(site.changes("s0", "ready"))
            assert "s0" not in site.pbx.acd.ready_seats_any()
            call = site.pbx.arrive("support", patience_s=30.0)
            await site.until_step(call, "enter_queue")
            assert site.steps(call) == [("enter_queue", None)]  # nobody to offer it to

            await site.press("s0", IN_READY)  # again: refused again, the caller waits on
            await until(lambda: len(site.refusals("s0")) == len(refused) + 1, 5,
                        "the second login refused")  # fmt: skip
            assert len(site.changes("s0", "ready")) == ready
            assert site.steps(call) == [("enter_queue", None)]
            await site.sign_in("s0")  # the agent signs in at the desk's page ...
            await site.press_ready_until("s0", "ready")  # ... and READY is taken
            assert site.why("s0", "ready") == Why.BUTTON
            offer = await site.until_step(call, "offer")  # the waiting caller comes
            assert offer["seat"] == "s0"
            await site.until_state("s0", "ringing")
            await site.answer("s0")
            assert (await site.until_step(call, "answer"))["seat"] == "s0"

    run(flow)


def test_auto_answer_takes_an_offer_with_no_hand_on_the_desk(tmp_path: Path,
                                                            mqtt_broker: Any) -> None:
    async def flow() -> None:
        async with call_site(tmp_path, mqtt_broker, 1, queues={"support": ["s0"]},
                             seat_defaults={"auto_answer_ms": 1500}, **FAST) as site:
            await site.login("s0")  # the headset worn
            inputs = site.seats["s0"].board.bits
            call = site.pbx.arrive("support", talk_s=3.0)
            await site.until_state("s0", "ringing")
            answer = await site.until_step(call, "answer", timeout=5)
            assert answer["seat"] == "s0" and answer["rings"] == 2  # 1.5 s: the second ring
            assert 1.4 <= answer["ring_s"] <= 2.0, answer
            await site.until_state("s0", "talking")
            assert site.why("s0", "talking") == Why.AUTO_ANSWER
            assert site.seats["s0"].board.bits == inputs  # nobody touched the desk
            release = await site.until_step(call, "release", timeout=10)
            assert release["by"] == "caller"
            await site.until_state("s0", "ready", timeout=10)  # after acw_s

            # with the headset on its hanger nobody is there to talk: it rings to the limit
            site.hang_up("s0")
            missed = site.pbx.arrive("support")
            rona = await site.until_step(missed, "ring_no_answer", timeout=8)
            assert rona["seat"] == "s0" and rona["rings"] == 3
            assert not [e for e in site.calls(missed) if e["type"] == "answer"]

    run(flow)
