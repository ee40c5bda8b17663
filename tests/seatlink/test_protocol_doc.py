"""docs/protocol.md against its sources: the vector table is vectors.json, the numbers in
the text are the firmware's."""

from __future__ import annotations

import re
from typing import Any

from seatlink_support import ROOT, firmware_constants, load_vectors

from gateway.seatlink.codec import QUEUE_SIZE

DOC = ROOT / "docs" / "protocol.md"
BEGIN, END = "<!-- vectors:begin -->", "<!-- vectors:end -->"


def render_vectors(vectors: list[dict[str, Any]]) -> str:
    """The table between the markers, as it must read."""
    rows = ["| # | direction | vector | bytes | result |", "|---|---|---|---|---|"]
    for number, v in enumerate(vectors, 1):
        shown = v["line"].replace("\r", "\\r").replace("\n", "\\n")
        result = "valid" if "frame" in v else f"**{v['error']}**"
        rows.append(f"| {number} | {v['direction']} | {v['name']} | `{shown}` | {result} |")
    return "\n".join(rows)


def section(text: str) -> str:
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    return text[start:end].strip("\n")


def test_vector_table_is_vectors_json() -> None:
    want = render_vectors(load_vectors())
    assert section(DOC.read_text(encoding="utf-8")) == want, (
        "docs/protocol.md's vector table is out of date; between the markers it should read:\n"
        + want
    )


def test_vector_bytes_are_safe_in_a_table() -> None:
    for v in load_vectors():
        assert "|" not in v["line"] and "`" not in v["line"], v["name"]


def test_numbers_in_the_text_are_the_firmwares() -> None:
    text = DOC.read_text(encoding="utf-8")
    link, rx, tx = (firmware_constants(m) for m in ("link", "rx", "tx"))
    assert f"**{link['RTO0']} ms**" in text and f"**{link['RTO_MAX']} ms**" in text
    assert f"**{QUEUE_SIZE} frames**" in text
    assert f"{rx['MAGIC']}" in text and f"{rx['RB'][1]} bytes" in text
    assert f"`TB` is {tx['TB'][1]}" in text
    # the link-up window: loop.py compares with 3000 * heartbeat_s ms
    loop = (ROOT / "firmware" / "loop.py").read_text(encoding="ascii")
    assert re.search(r"L\[UP\] < 3000 \* cfg\.V\[HEARTBEAT_S\]", loop)
    assert "3 x `heartbeat_s`" in text
