"""The Asterisk AMI backend: wire protocol, client, bridge and reconnecting backend, against
a scripted AMI peer on a real loopback socket (tests/pbx/ami_peer.py); no Asterisk needed.

Events carry `Timestamp:` headers (manager.conf `timestampevents = yes`), so every duration
the bridge measures itself is exact."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from ami_peer import AmiPeer

from gateway.contract.payloads import CallEvent, TransferTarget, parse_command
from gateway.pbx.ami_bridge import AmiAction, AmiBackend, AmiBridge, AmiSettings, SeatCommand
from gateway.pbx.ami_client import AmiClient, AmiConnectionLost, AmiError
from gateway.pbx.ami_protocol import AmiMessage, AmiParser, AmiProtocolError, encode_action

T0 = 1_700_000_000.0
SEATS = {"s101": "PJSIP/1001", "s102": "PJSIP/1002", "s103": "PJSIP/1003"}


def settings(port: int = 5038, **extra: Any) -> AmiSettings:
    values: dict[str, Any] = {
        "host": "127.0.0.1", "port": port, "username": "seatlink", "secret": "s3cret",
        "seats": SEATS, "extensions": {"1003": "s103"}, "reconnect_s": (0.05, 0.2),
    }  # fmt: skip
    values.update(extra)
    return AmiSettings(**values)


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(scenario(), 4.5))


async def until(check: Callable[[], object], timeout: float = 2.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if loop.time() > deadline:
            raise AssertionError(f"not within {timeout} s")
        await asyncio.sleep(0.01)


# --- what Asterisk sends, header for header (Asterisk 18/20 AMI event reference) ----------

LINKED = "1700000000.17"


def caller(at: float, linkedid: str = LINKED, **more: str) -> dict[str, str]:
    """The caller's channel snapshot, as every app_queue event starts."""
    return {"Timestamp": f"{T0 + at:.6f}", "Channel": "PJSIP/trunk-00000011",
            "ChannelState": "6", "ChannelStateDesc": "Up", "CallerIDNum": "+8613812345678",
            "CallerIDName": "<unknown>", "ConnectedLineNum": "<unknown>",
            "ConnectedLineName": "<unknown>", "Language": "en", "AccountCode": "",
            "Context": "from-trunk", "Exten": "8000", "Priority": "3", "Uniqueid": linkedid,
            "Linkedid": linkedid, **more}  # fmt: skip


def member(at: float, interface: str, linkedid: str = LINKED, **more: str) -> dict[str, str]:
    """Caller snapshot, the member channel's (Dest...) and the queue member's headers."""
    ext = interface.split("/")[-1]
    return caller(at, linkedid, DestChannel=f"{interface}-0000001{ext[-1]}",
                  DestChannelState="5", DestChannelStateDesc="Ringing",
                  DestCallerIDNum=ext, DestUniqueid=f"1700000000.{ext}",
                  DestLinkedid=linkedid, Queue="support", MemberName=f"Agent {ext}",
                  Interface=interface, **more)  # fmt: skip


def agent_leg(at: float, linkedid: str = LINKED) -> dict[str, str]:
    """A Hold/Unhold as the agent's phone raises it: the agent's channel, the call's
    Linkedid."""
    return {"Timestamp": f"{T0 + at:.6f}", "Channel": "PJSIP/1002-00000012",
            "ChannelState": "6", "ChannelStateDesc": "Up", "CallerIDNum": "1002",
            "Uniqueid": "1700000018.22", "Linkedid": linkedid, "MusicClass": "default"}  # fmt: skip


FULL_CALL: list[tuple[str, dict[str, str]]] = [
    ("Newchannel", caller(0)),
    ("QueueCallerJoin", caller(0, Queue="support", Position="1", Count="1")),
    ("AgentCalled", member(2, "PJSIP/1001")),
    ("AgentRingNoAnswer", member(17, "PJSIP/1001", RingTime="15000")),
    ("AgentCalled", member(18, "PJSIP/1002")),
    ("AgentConnect", member(24, "PJSIP/1002", RingTime="6", HoldTime="24")),
    ("QueueCallerLeave", caller(24, Queue="support", Count="0", Position="1")),
    ("Hold", agent_leg(40)),
    ("Unhold", agent_leg(52.5)),
    (
        "BlindTransfer",
        {
            "Timestamp": f"{T0 + 60:.6f}",
            "Result": "Success",
            "TransfererChannel": "PJSIP/1002-00000012",
            "TransfererLinkedid": LINKED,
            "TransfereeChannel": "PJSIP/trunk-00000011",
            "TransfereeExten": "8000",
            "TransfereeUniqueid": LINKED,
            "TransfereeLinkedid": LINKED,
            "IsExternal": "No",
            "Context": "from-internal",
            "Extension": "1003",
        },
    ),  # fmt: skip
    (
        "AgentComplete",
        member(60, "PJSIP/1002", HoldTime="24", TalkTime="36", Reason="transfer"),
    ),  # fmt: skip
]


def event(name: str, headers: dict[str, str]) -> AmiMessage:
    return AmiMessage((("Event", name), *headers.items()))


class Outputs:
    """PbxOutputs that keep what they are given."""

    def __init__(self) -> None:
        self.events: list[CallEvent] = []
        self.commands: list[tuple[str, dict[str, Any]]] = []

    async def call_event(self, event: CallEvent) -> None:
        self.events.append(event)

    async def seat_command(self, seat: str, body: dict[str, Any]) -> None:
        parse_command(json.dumps(body).encode())  # a valid seat command of docs/mqtt.md
        self.commands.append((seat, body))


@contextlib.asynccontextmanager
async def running(backend: AmiBackend) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(backend.run())
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


# --- wire protocol ------------------------------------------------------------------------


def _stream() -> bytes:
    return (
        b"Asterisk Call Manager/5.0.1\r\n"
        b"Response: Success\r\nActionID: a-1\r\nMessage: Authentication accepted\r\n\r\n"
        b"Event: VarSet\r\nChannel: PJSIP/1001-00000001\r\nVariable: X\r\nValue: a: b\r\n\r\n"
        b"Event: AgentCalled\nQueue: support\nChanVariable: A=1\nChanVariable: B=2\n\n"
        b"\r\n"  # stray blank line between messages: nothing
        b"Event: Hold\r\nLinkedid: 1.2\r\nCallerIDName: Jos\xc3\xa9\r\n\r\n"
    )


def test_parser_reassembles_messages_from_any_chunking() -> None:
    whole = AmiParser()
    expected = whole.feed(_stream())
    assert whole.banner == "Asterisk Call Manager/5.0.1" and whole.version == "5.0.1"
    assert [m.kind for m in expected] == ["response", "event", "event", "event"]
    assert expected[0].action_id == "a-1"
    assert expected[1].get("value") == "a: b"  # only the first colon splits
    assert expected[2].get_all("ChanVariable") == ["A=1", "B=2"]  # repeats kept, in order
    assert expected[2].get("queue") == "support"  # "\n" alone ends a line too
    assert expected[3].get("CallerIDName") == "José"
    rnd = random.Random(4)
    for sizes in ([1] * 400, [rnd.randint(1, 40) for _ in range(400)]):
        parser, data, got = AmiParser(), _stream(), []
        for size in sizes:
            got += parser.feed(data[:size])
            data = data[size:]
        assert got == expected
        assert parser.stats.malformed_lines == parser.stats.junk == 0


def test_parser_counts_and_skips_garbage_never_raises() -> None:
    parser = AmiParser(max_message=200)
    parser.feed(b"Asterisk Call Manager/2.10.6\r\n")
    got = parser.feed(
        b"this line has no colon\r\n: no key\r\nEvent: Odd\r\n\r\n"  # 2 malformed, kept
        b"Foo: bar\r\nBaz: 1\r\n\r\n"  # neither Response nor Event: junk
        b"Event: Big\r\n" + b"Data: " + b"x" * 300 + b"\r\nMore: y\r\n\r\n"  # oversized
        b"Event: Bad\xff\xfebytes\r\n\r\n"
    )
    assert [m.name for m in got] == ["Odd", "Bad\ufffd\ufffdbytes"]
    assert (parser.stats.malformed_lines, parser.stats.junk, parser.stats.oversized) == (2, 1, 1)
    # a line that never ends is dropped as it grows, then skipped to its message's end
    assert parser.feed(b"Event: Flood\r\nData: " + b"z" * 500) == []
    assert parser.feed(b"z" * 500 + b"\r\nX: y\r\n\r\nEvent: After\r\n\r\n")[0].name == "After"
    assert parser.stats.oversized == 2


def test_parser_refuses_a_peer_that_is_not_ami() -> None:
    with pytest.raises(AmiProtocolError, match="not an AMI peer.*SSH-2.0"):
        AmiParser().feed(b"SSH-2.0-OpenSSH_9.6\r\n")
    with pytest.raises(AmiProtocolError, match="no banner line"):
        AmiParser().feed(b"\x00" * 1000)


def test_encode_action_and_header_injection() -> None:
    data = encode_action("QueuePause", action_id="x-1", Interface="PJSIP/1001", Paused="true",
                         Variable=["A=1", "B=2"])  # fmt: skip
    assert data == (b"Action: QueuePause\r\nActionID: x-1\r\nInterface: PJSIP/1001\r\n"
                    b"Paused: true\r\nVariable: A=1\r\nVariable: B=2\r\n\r\n")  # fmt: skip
    for bad in ({"Reason": "break\r\nAction: Originate"}, {"Reason": "a\nb"},
                {"Variable": ["ok", "x\r"]}):  # fmt: skip
        with pytest.raises(ValueError, match="header injection"):
            encode_action("QueuePause", action_id="x-2", **bad)
    with pytest.raises(ValueError, match="header injection"):
        encode_action("Ping\r\nAction: Logoff", action_id="x-3")
    with pytest.raises(ValueError, match="header injection"):
        encode_action("Ping", action_id="x\n4")
    with pytest.raises(ValueError, match="not a header name"):
        encode_action("Ping", action_id="x-5", **{"Bad: key": "v"})


# --- client -------------------------------------------------------------------------------


def test_login_success_and_clear_errors() -> None:
    async def scenario() -> None:
        async with AmiPeer() as peer:
            async with AmiClient(host=peer.host, port=peer.port, username="seatlink",
                                 secret="s3cret") as ami:  # fmt: skip
                assert ami.banner == "Asterisk Call Manager/5.0.1"
                pong = await ami.action("Ping")
                assert (pong.name, pong.get("Ping")) == ("Success", "Pong")
                events = ami.events()
                assert (await anext(events)).name == "FullyBooted"
            login = peer.actions_named("Login")[0]
            assert (login["Username"], login["Secret"], login["Events"]) == \
                ("seatlink", "s3cret", "on")  # fmt: skip
            assert peer.actions_named("Logoff") and peer.errors == []

            with pytest.raises(AmiError, match="login as 'seatlink'.*Authentication failed"):
                async with AmiClient(host=peer.host, port=peer.port, username="seatlink",
                                     secret="wrong"):  # fmt: skip
                    pass
        async with AmiPeer(banner=b"220 smtp.example ESMTP\r\n") as not_ami:
            with pytest.raises(AmiError, match="not an AMI peer.*220 smtp"):
                async with AmiClient(host=not_ami.host, port=not_ami.port, username="u",
                                     secret="s"):  # fmt: skip
                    pass
        async with AmiPeer(banner=b"") as silent:
            client = AmiClient(host=silent.host, port=silent.port, username="u", secret="s")
            client.banner_timeout_s = 0.2
            with pytest.raises(AmiError, match="no AMI banner within 0.2 s"):
                async with client:
                    pass
        port = silent.port  # stopped: nothing listens there now
        with pytest.raises(AmiError, match="cannot connect to AMI"):
            async with AmiClient(host="127.0.0.1", port=port, username="u", secret="s"):
                pass

    run(scenario)


def test_responses_are_matched_by_action_id_not_by_order() -> None:
    async def scenario() -> None:
        async with AmiPeer(interfaces={"PJSIP/1001", "PJSIP/1002"}) as peer:
            async with AmiClient(host=peer.host, port=peer.port, username="seatlink",
                                 secret="s3cret") as ami:  # fmt: skip
                peer.deferred_actions = {"QueuePause"}
                asks = [asyncio.create_task(ami.action("QueuePause", Interface=i, Paused="true"))
                        for i in ("PJSIP/1001", "PJSIP/9999", "PJSIP/1002")]  # fmt: skip
                await peer.wait_until(lambda: len(peer.actions_named("QueuePause")) == 3)
                # a response to nobody and an event in between: neither is taken for one
                await peer.send_raw(b"Response: Success\r\nActionID: not-ours\r\n\r\n")
                await peer.send_event("QueueMemberPause", ActionID="sl-x-1", Paused="1")
                await peer.flush_deferred(reverse=True)
                replies = await asyncio.gather(*asks)
                assert [r.name for r in replies] == ["Success", "Error", "Success"]
                assert replies[1].get("Message") == "Interface not found"
                ids = [a["ActionID"] for a in peer.actions_named("QueuePause")]
                assert [r.action_id for r in replies] == ids and len(set(ids)) == 3
                events = ami.events()
                assert (await anext(events)).name == "FullyBooted"
                assert (await anext(events)).name == "QueueMemberPause"
                assert ami.stats.stray_responses == 1

                # a value that would inject a header is refused before anything is sent
                sent = len(peer.actions)
                with pytest.raises(ValueError, match="header injection"):
                    await ami.action("QueuePause", Interface="PJSIP/1001\r\nAction: Originate")
                await asyncio.sleep(0.05)
                assert len(peer.actions) == sent and peer.errors == []

                # an action that gets no answer times out on its own
                with pytest.raises(AmiError, match="QueuePause: no response within 0.1 s"):
                    await ami.action("QueuePause", timeout_s=0.1, Interface="PJSIP/1001")

    run(scenario)


def test_a_lost_connection_fails_pending_actions_and_ends_events() -> None:
    async def scenario() -> None:
        async with AmiPeer(interfaces={"PJSIP/1001"}) as peer:
            async with AmiClient(host=peer.host, port=peer.port, username="seatlink",
                                 secret="s3cret") as ami:  # fmt: skip
                peer.deferred_actions = {"QueuePause"}
                ask = asyncio.create_task(ami.action("QueuePause", Interface="PJSIP/1001"))
                await peer.wait_until(lambda: peer.actions_named("QueuePause"))
                await peer.drop()
                with pytest.raises(AmiConnectionLost):
                    await ask
                with pytest.raises(AmiConnectionLost):
                    async for _ in ami.events():
                        pass
                with pytest.raises(AmiConnectionLost):
                    await ami.action("Ping")

    run(scenario)


# --- bridge -------------------------------------------------------------------------------


def test_a_full_inbound_call_through_the_socket() -> None:
    async def scenario() -> None:
        async with AmiPeer(interfaces=set(SEATS.values())) as peer:
            out = Outputs()
            backend = AmiBackend(settings(peer.port), pbx="pbx1", outputs=out)
            async with running(backend):
                await until(lambda: backend.stats()["connected"])
                for name, headers in FULL_CALL:
                    await peer.send_event(name, **headers)
                await until(lambda: len(out.events) == 9)
        ev = out.events
        assert [e.type for e in ev] == [
            "enter_queue",
            "offer",
            "ring_no_answer",
            "offer",
            "answer",
            "hold",
            "unhold",
            "transfer",
            "release",
        ]
        call = ev[0].call  # where the process's clock started the count (restarts differ)
        assert 1 <= call <= 99_999_999
        assert [e.id for e in ev] == [f"pbx1-{call}-{i}" for i in range(1, 10)]
        assert [e.step for e in ev] == list(range(1, 10))
        assert {(e.call, e.queue, e.number, e.arrived, e.direction, e.pbx) for e in ev} == \
            {(call, "support", "***5678", T0, "inbound", "pbx1")}  # fmt: skip
        assert [e.seat for e in ev] == [None, "s101", "s101", "s102", "s102", "s102", "s102",
                                        "s102", "s102"]  # fmt: skip
        assert [e.t - T0 for e in ev] == [0, 2, 17, 18, 24, 40, 52.5, 60, 60]
        offer1, rna, offer2, answer, _, unhold, transfer, release = ev[1:]
        assert (offer1.wait_s, offer2.wait_s) == (2.0, 18.0)
        assert (rna.ring_s, rna.rings, rna.detail) == (15.0, 3, "rang out")
        assert (answer.wait_s, answer.ring_s, answer.rings) == (24.0, 6.0, 2)
        assert unhold.hold_s == 12.5
        assert transfer.target == TransferTarget(kind="blind", seat="s103")
        assert transfer.detail == "extension 1003"
        assert (release.talk_s, release.hold_s, release.by, release.detail) == \
            (36.0, 12.5, "agent", "transferred")  # fmt: skip

        cmds = [(seat, b["command"], b.get("on")) for seat, b in out.commands]
        assert cmds == [("s101", "offer", None), ("s101", "cancel", None),
                        ("s102", "offer", None), ("s102", "connected", None),
                        ("s102", "hold", True), ("s102", "hold", False),
                        ("s102", "released", None)]  # fmt: skip
        offer = out.commands[0][1]
        assert offer == {"v": 1, "id": offer["id"], "command": "offer", "call": call,
                         "ring_limit": 3, "ring_ms": 5000, "expires_in_s": 10.0}  # fmt: skip
        assert [b["id"] for _, b in out.commands] == [f"pbx1-{i}" for i in range(1, 8)]
        assert {b["call"] for _, b in out.commands} == {call}
        stats = backend.stats()
        # FullyBooted, Newchannel, QueueCallerLeave: read, not translated
        assert (stats["events_in"], stats["events_unknown"]) == (12, 3)
        assert stats["malformed"] == stats["unknown_interfaces"] == 0
        assert stats["calls_active"] == 0 and peer.errors == []

    run(scenario)


def _bridge(**extra: Any) -> tuple[AmiBridge, list[float]]:
    now = [T0]
    return AmiBridge(settings(**extra), pbx="pbx1", clock=lambda: now[0], first_call=1), now


def _events(outputs: list[CallEvent | SeatCommand]) -> list[CallEvent]:
    return [o for o in outputs if isinstance(o, CallEvent)]


def _commands(outputs: list[CallEvent | SeatCommand]) -> list[tuple[str, str]]:
    return [(o.seat, o.body["command"]) for o in outputs if isinstance(o, SeatCommand)]


def test_abandon_while_ringing_and_ringall_cancels() -> None:
    bridge, _ = _bridge()
    out = []
    gone = caller(9, Queue="support", Position="1", OriginalPosition="1", HoldTime="9")
    for name, headers in [("QueueCallerJoin", caller(0, Queue="support")),
                          ("AgentCalled", member(3, "PJSIP/1001")),
                          ("QueueCallerAbandon", gone)]:  # fmt: skip
        out += bridge.handle(event(name, headers))
    abandon = _events(out)[-1]
    assert (abandon.type, abandon.seat, abandon.wait_s, abandon.by) == \
        ("abandon", "s101", 9.0, "caller")  # fmt: skip
    assert _commands(out) == [("s101", "offer"), ("s101", "cancel")]

    # ringall: two members ring, one answers; the other is told to stop ringing
    out = []
    for name, headers in [("QueueCallerJoin", caller(20, "L2", Queue="support")),
                          ("AgentCalled", member(21, "PJSIP/1001", "L2")),
                          ("AgentCalled", member(21, "PJSIP/1002", "L2")),
                          ("AgentConnect", member(25, "PJSIP/1002", "L2", HoldTime="5",
                                                  RingTime="4"))]:  # fmt: skip
        out += bridge.handle(event(name, headers))
    assert _commands(out) == [("s101", "offer"), ("s102", "offer"), ("s102", "connected"),
                              ("s101", "cancel")]  # fmt: skip
    assert _events(out)[0].call == 2


def test_unknown_interface_and_unrelated_events_are_counted() -> None:
    bridge, _ = _bridge()
    out = bridge.handle(event("QueueCallerJoin", caller(0, Queue="support")))
    out += bridge.handle(event("AgentCalled", member(1, "PJSIP/9999")))
    out += bridge.handle(event("AgentRingNoAnswer", member(16, "PJSIP/9999", RingTime="15000")))
    assert [(e.type, e.seat) for e in _events(out)] == \
        [("enter_queue", None), ("offer", None), ("ring_no_answer", None)]  # fmt: skip
    assert _commands(out) == []  # no seat to tell
    assert bridge.counts.unknown_interfaces == 2
    # a hold on a call no queue introduced, an event with no call id, a response
    assert bridge.handle(event("Hold", agent_leg(5, "other"))) == []
    assert bridge.handle(event("AgentCalled", {"Queue": "support"})) == []
    assert bridge.handle(AmiMessage((("Response", "Success"),))) == []
    assert (bridge.counts.events_unrelated, bridge.counts.malformed) == (1, 1)
    assert bridge.counts.events_in == 5


def test_attended_transfer_to_an_unmapped_extension_and_caller_hangup() -> None:
    bridge, _ = _bridge()
    out = []
    for name, headers in [
        ("QueueCallerJoin", caller(0, Queue="support")),
        ("AgentCalled", member(1, "PJSIP/1003")),
        ("AgentConnect", member(3, "PJSIP/1003", HoldTime="3", RingTime="2")),
        ("Hold", agent_leg(10)),
        ("Hold", agent_leg(10)),  # both legs may report it: one hold
        ("AttendedTransfer", {"Timestamp": f"{T0 + 30}", "Result": "Success",
                              "OrigTransfererLinkedid": LINKED, "TransfereeLinkedid": LINKED,
                              "SecondTransfererConnectedLineNum": "555",
                              "TransferTargetCallerIDNum": "555", "DestType": "Bridge"}),
        ("AgentComplete", member(31, "PJSIP/1003", HoldTime="3", TalkTime="28",
                                 Reason="caller")),
    ]:  # fmt: skip
        out += bridge.handle(event(name, headers))
    ev = _events(out)
    assert [e.type for e in ev] == ["enter_queue", "offer", "answer", "hold", "transfer",
                                    "release"]  # fmt: skip
    transfer, release = ev[-2:]
    assert transfer.target == TransferTarget(kind="consultative")
    assert (transfer.seat, transfer.detail) == ("s103", "extension 555")
    # still on hold at the end: the hold counts up to the release
    assert (release.talk_s, release.hold_s, release.by) == (28.0, 21.0, "caller")
    assert ev[2].rings == 1  # answered in the first ring


def test_call_ids_linger_after_the_end_then_go_and_stay_bounded() -> None:
    bridge, now = _bridge(call_linger_s=60, max_calls=3)
    join = [("QueueCallerJoin", caller(0, Queue="support"))]
    abandon = [("QueueCallerAbandon", caller(5, Queue="support", HoldTime="5"))]
    first = _events(bridge.handle(event(*join[0])) + bridge.handle(event(*abandon[0])))
    assert {e.call for e in first} == {1}
    # back in a queue within the linger (a transfer to a queue): the same call, next step
    again = _events(bridge.handle(event("QueueCallerJoin", caller(30, Queue="sales"))))
    assert (again[0].call, again[0].step, again[0].queue) == (1, 3, "sales")
    bridge.handle(event(*abandon[0]))
    now[0] = T0 + 500  # past the linger (no Timestamp: the clock decides)
    del_ts = {k: v for k, v in caller(0).items() if k != "Timestamp"}
    late = _events(bridge.handle(event("QueueCallerJoin", {**del_ts, "Queue": "support"})))
    assert (late[0].call, late[0].step) == (2, 1)
    for i in range(5):  # more unfinished calls than max_calls
        bridge.handle(event("QueueCallerJoin", {**del_ts, "Linkedid": f"x{i}", "Queue": "q"}))
    assert bridge.calls_active == 3 and bridge.counts.calls_evicted == 3


# --- seat states -> QueuePause --------------------------------------------------------------


def test_seat_states_become_queue_pause_with_reason_only_on_change() -> None:
    bridge, _ = _bridge()

    def pause(paused: str, reason: str | None = None) -> list[AmiAction]:
        fields = {"Interface": "PJSIP/1001", "Paused": paused}
        return [AmiAction("QueuePause", fields | ({"Reason": reason} if reason else {}))]

    assert bridge.seat_state("s101", "not_ready", "meal") == pause("true", "meal")
    assert bridge.seat_state("s101", "not_ready", "meal") == []  # no change
    assert bridge.seat_state("s101", "not_ready", "break") == pause("true", "break")
    assert bridge.seat_state("s101", "ready") == pause("false")
    assert bridge.seat_state("s101", "ready") == []
    for busy in ("ringing", "talking", "hold"):  # app_queue knows
        assert bridge.seat_state("s101", busy) == []  # type: ignore[arg-type]
    assert bridge.seat_state("s101", "acw") == pause("true", "acw")
    assert bridge.seat_state("s101", "ready") == pause("false")
    assert bridge.seat_state("s101", "logged_out") == pause("true", "logged_out")
    assert bridge.seat_state("nobody", "ready") == [] and bridge.counts.unknown_seats == 1

    per_queue, _ = _bridge(queues=["support", "sales"])
    assert [a.fields.get("Queue") for a in per_queue.seat_state("s102", "acw")] == \
        ["support", "sales"]  # fmt: skip


def test_backend_pauses_then_reconnects_resends_and_events_flow_again() -> None:
    async def scenario() -> None:
        # s103's interface is unknown to this Asterisk: refused, counted
        async with AmiPeer(interfaces={"PJSIP/1001", "PJSIP/1002"}) as peer:
            out = Outputs()
            backend = AmiBackend(settings(peer.port), pbx="pbx1", outputs=out)
            await backend.seat_state("s101", "not_ready", "break")  # before connecting
            async with running(backend):
                await until(lambda: backend.stats()["connected"])
                await backend.seat_state("s102", "ready")
                await backend.seat_state("s103", "ready")
                await backend.seat_state("s102", "ringing")  # nothing to send
                await backend.seat_state("ghost", "ready")
                await until(lambda: backend.stats()["actions_failed"] == 1)
                got = [(a["Interface"], a["Paused"], a.get("Reason"))
                       for a in peer.actions_named("QueuePause")]  # fmt: skip
                assert got == [("PJSIP/1001", "true", "break"), ("PJSIP/1002", "false", None),
                               ("PJSIP/1003", "false", None)]  # fmt: skip

                # Asterisk goes away; meanwhile s101 goes Ready then Not Ready (meeting)
                await peer.stop()
                await until(lambda: not backend.stats()["connected"])
                await backend.seat_state("s101", "ready")
                await backend.seat_state("s101", "not_ready", "meeting")
                del peer.actions[:]
                await peer.restart()
                await until(lambda: backend.stats()["connected"])
                await until(lambda: len(peer.actions_named("QueuePause")) == 3)
                again = {(a["Interface"], a["Paused"], a.get("Reason"))
                         for a in peer.actions_named("QueuePause")}  # fmt: skip
                assert again == {
                    ("PJSIP/1001", "true", "meeting"),
                    ("PJSIP/1002", "false", None),
                    ("PJSIP/1003", "false", None),
                }

                await peer.send_event("QueueCallerJoin", **caller(0, Queue="support"))
                await until(lambda: out.events)
                stats = backend.stats()
                assert stats["reconnects"] == 1 and stats["actions_sent"] == 6
                assert stats["unknown_seats"] == 1 and peer.errors == []
                assert peer.actions_named("Login")[0]["Secret"] == "s3cret"

    run(scenario)


def test_dropped_connection_and_missed_pong_reconnect(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(AmiClient, "ping_s", 0.1)

    async def scenario() -> None:
        async with AmiPeer(interfaces={"PJSIP/1001"}) as peer:
            out = Outputs()
            backend = AmiBackend(settings(peer.port), pbx="pbx1", outputs=out)
            async with running(backend):
                await until(lambda: peer.logins == 1)
                await backend.seat_state("s101", "acw")
                await until(lambda: peer.actions_named("QueuePause"))
                await peer.drop()  # reset by peer
                await until(lambda: peer.logins == 2)
                await until(lambda: len(peer.actions_named("QueuePause")) == 2)
                assert peer.actions_named("QueuePause")[1]["Reason"] == "acw"

                # a half-open connection: no error, just silence; the pong never comes
                peer.answer_pings = False
                # (the peer counts a login before its answer: wait for the backend's count)
                await until(lambda: backend.stats()["reconnects"] == 2, timeout=1.5)
                assert backend.stats()["connected"] and peer.logins == 3
                assert "no pong" in (backend.last_error or "")
                peer.answer_pings = True
                await asyncio.sleep(0.35)  # several pings answered: it stays
                assert peer.logins == 3 and backend.stats()["connected"]
                await peer.send_event("QueueCallerJoin", **caller(0, Queue="support"))
                await until(lambda: out.events)
                assert len(peer.actions_named("Ping")) >= 3

    run(scenario)


def test_login_refused_is_retried_with_backoff_and_reported() -> None:
    async def scenario() -> None:
        async with AmiPeer(users={"seatlink": "other"}) as peer:
            backend = AmiBackend(settings(peer.port), pbx="pbx1", outputs=Outputs())
            async with running(backend):
                await until(lambda: len(peer.actions_named("Login")) >= 3)
                assert "Authentication failed" in (backend.last_error or "")
                assert not backend.stats()["connected"]
                peer.users["seatlink"] = "s3cret"  # the PBX admin fixed it
                await until(lambda: backend.stats()["connected"], timeout=1.0)

    run(scenario)


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="same interface"):
        settings(seats={"s1": "PJSIP/1001", "s2": "pjsip/1001"})
    with pytest.raises(ValueError, match="reconnect_s"):
        settings(reconnect_s=(5, 1))
    with pytest.raises(ValueError, match="extra"):
        settings(password="x")
    assert "s3cret" not in repr(settings())
