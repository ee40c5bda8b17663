"""What a PBX backend (the simulator, Asterisk AMI) hands to the PBX connector around it."""

from __future__ import annotations

from typing import Any, Protocol

from gateway.contract.payloads import CallEvent


class PbxOutputs(Protocol):
    async def call_event(self, event: CallEvent) -> None:
        """Publish one step of a call (`call/{call}/event`)."""
        ...

    async def seat_command(self, seat: str, body: dict[str, Any]) -> None:
        """Publish a command for a seat (`seat/{seat}/cmd`), `body` as docs/mqtt.md says."""
        ...
