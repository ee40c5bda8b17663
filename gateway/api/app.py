"""The supervisor API as a FastAPI app (docs/api.md; OpenAPI at /docs).

`create_app(settings)` builds it; its lifespan opens the accounts store and the floor's MQTT
client and closes both. `ApiService` (service.py) serves it with uvicorn."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from gateway.api.accounts import AccountStore, open_accounts
from gateway.api.deps import Services
from gateway.api.floor import Floor
from gateway.api.metrics import ApiMetrics
from gateway.api.routes import (
    alerts,
    auth,
    compliance,
    firmware,
    kpis,
    reports,
    seats,
    signin,
    users,
    ws,
)
from gateway.api.settings import ApiSettings
from gateway.api.signins import SeatAgentPublisher
from gateway.contract.topics import Topics

STATIC = Path(__file__).resolve().parent / "static"

DESCRIPTION = """Seats, KPIs, alerts, reports, compliance and commands for supervisors.

Log in with a personal account at `POST /auth/token` (OAuth2 password flow) and send the
token as `Authorization: Bearer <token>`. Every endpoint names the roles it needs; every
login and command is in the audit log (`GET /audit`, admins). The live feed is the
WebSocket `/ws?token=...`; the wallboard is at `/wallboard/`, and each desk's page, where
an agent signs in at the seat, at `/desk?seat=<seat>`."""


def create_app(settings: ApiSettings, *, accounts: AccountStore | None = None) -> FastAPI:
    """`accounts`: an open store to use (tests); by default `settings.accounts` is opened
    at start-up and closed at shutdown. The site's targets are read here, so a mistake in
    them stops the API before it serves (ValueError naming the key)."""
    targets = settings.site_targets()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = accounts if accounts is not None else open_accounts(settings.accounts)
        metrics = ApiMetrics()
        floor = Floor(topics=Topics(site=settings.site, root=settings.root),
                      broker=settings.broker, client_id=f"seatlink-api-{settings.site}-"
                      f"{settings.api}", feed_queue_max=settings.ws_queue_max)  # fmt: skip
        seat_agents = SeatAgentPublisher(store, floor)
        metrics.watch(floor, seat_agents)
        app.state.services = Services(settings=settings, accounts=store, floor=floor,
                                      metrics=metrics, targets=targets,
                                      seat_agents=seat_agents)  # fmt: skip
        try:
            async with floor:
                yield
        finally:
            if accounts is None:
                store.close()

    app = FastAPI(title="seatlink supervisor API", version="1", description=DESCRIPTION,
                  lifespan=lifespan)  # fmt: skip
    for module in (auth, users, seats, signin, kpis, alerts, reports, compliance, firmware,
                   ws):  # fmt: skip
        app.include_router(module.router)

    @app.get("/metrics", tags=["metrics"], response_class=Response)
    async def metrics(request: Request) -> Response:
        """Prometheus text format: counts only, no names or numbers (open, for scraping)."""
        body = request.app.state.services.metrics.render()
        return Response(body, media_type="text/plain; version=0.0.4")

    @app.get("/health", tags=["metrics"])
    async def health(request: Request) -> dict[str, object]:
        """Up, and whether the broker is connected (open, for load balancers)."""
        floor = request.app.state.services.floor
        return {"ok": True, "broker": floor.connected, "seats": len(floor.seats)}

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse("/wallboard/")

    @app.get("/desk", include_in_schema=False)
    async def desk() -> FileResponse:
        """The desk's page (its seat in the URL: /desk?seat=s101): an agent signs in there."""
        return FileResponse(STATIC / "desk.html", media_type="text/html")

    app.mount("/wallboard", StaticFiles(directory=STATIC, html=True), name="wallboard")
    return app
