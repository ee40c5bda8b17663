"""The live feed: one WebSocket per wallboard or client (docs/api.md, WebSocket feed).

`/ws?token=<bearer token>` (a browser cannot set headers on a WebSocket). First message: a
`snapshot` of every seat, the live KPIs, the open alerts and the site's targets; then
`batch` messages, each with the `updates` of the last few milliseconds (`seat`,
`seat_removed`, `kpi`, `alerts`, `alert`, `decision`, `connected`), and `resync` when this
client fell behind or asked for a snapshot (one follows at once). The session is checked
again every SESSION_CHECK_S: a logout, a disabled account or an expiry closes the feed
(code 4401)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
from typing import Any

from fastapi import APIRouter, HTTPException, WebSocket, WebSocketDisconnect
from fastapi.concurrency import run_in_threadpool

from gateway.api.deps import FLOOR_VIEW, session_of
from gateway.api.floor import RESYNC, Feed, Floor

router = APIRouter(tags=["live"])
SESSION_CHECK_S = 15.0


@router.websocket("/ws")
async def feed(websocket: WebSocket, token: str = "") -> None:
    svc = websocket.app.state.services
    await websocket.accept()
    try:
        session = await session_of(token, svc)
    except HTTPException as exc:
        await websocket.close(code=4401, reason=str(exc.detail)[:120])
        return
    if not session.roles & FLOOR_VIEW:
        await websocket.close(code=4403, reason="needs role supervisor, facilities or admin")
        return
    floor = svc.floor
    updates = floor.subscribe()
    # the site's targets, for the wallboard's met and missed (the core's [targets])
    targets = dataclasses.asdict(svc.targets)
    sender = asyncio.create_task(_send(websocket, updates, floor, targets))
    checker = asyncio.create_task(_check(websocket, token, svc))
    try:
        while True:  # the client may ask for a fresh snapshot; anything else is ignored
            text = await websocket.receive_text()
            if text.strip() == "snapshot":
                updates.ask_snapshot()
    except WebSocketDisconnect:
        pass
    finally:
        updates.close()
        for task in (sender, checker):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


async def _send(websocket: WebSocket, updates: Feed, floor: Floor,
                targets: dict[str, Any]) -> None:  # fmt: skip
    await websocket.send_text(json.dumps({**floor.snapshot(), "targets": targets}))
    while True:
        text = await updates.get()  # serialised once for every feed
        await websocket.send_text(text)
        if text is RESYNC:
            await websocket.send_text(json.dumps({**floor.snapshot(), "targets": targets}))


async def _check(websocket: WebSocket, token: str, svc: Any) -> None:
    while True:
        await asyncio.sleep(SESSION_CHECK_S)
        if await run_in_threadpool(svc.accounts.session, token) is None:
            await websocket.close(code=4401, reason="the session ended")
            return
