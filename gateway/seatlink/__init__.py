"""Host side of the seat link: the serial protocol between a seat board and the gateway.

codec: frames and the protocol's enums; messages: typed seat reports and host commands;
session: a synchronous link end for hardware-in-the-loop tests. docs/protocol.md is the spec.
"""

from gateway.seatlink.codec import (
    Direction,
    ErrorCode,
    EventCode,
    Frame,
    FrameError,
    Kind,
    Reason,
    SettingKey,
    State,
    Why,
    crc16,
    decode,
    encode,
)
from gateway.seatlink.messages import Command, MessageError, SeatMessage, parse_message
from gateway.seatlink.session import AckTimeout, Session, SessionError, SessionTimeout

__all__ = [
    "AckTimeout",
    "Command",
    "Direction",
    "ErrorCode",
    "EventCode",
    "Frame",
    "FrameError",
    "Kind",
    "MessageError",
    "Reason",
    "SeatMessage",
    "Session",
    "SessionError",
    "SessionTimeout",
    "SettingKey",
    "State",
    "Why",
    "crc16",
    "decode",
    "encode",
    "parse_message",
]
