"""A live API for tests: the real app under uvicorn on a free port, on a real mosquitto, with
one personal account per role. The server runs on its own event loop in a thread, so tests
talk to it over HTTP and WebSocket as any client would."""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as paho

from gateway.api.accounts import Role, open_accounts
from gateway.api.service import ApiService
from gateway.api.settings import ApiSettings
from gateway.contract.topics import Topics

PASSWORD = "Seat-link 2026!"
USERS: dict[Role, tuple[str, str, str | None]] = {  # role -> (username, name, agent id)
    Role.ADMIN: ("ada.lovelace", "Ada Lovelace", None),
    Role.SUPERVISOR: ("sam.okafor", "Sam Okafor", None),
    Role.FACILITIES: ("fay.morgan", "Fay Morgan", None),
    Role.AGENT: ("alan.turing", "Alan Turing", "a1"),
}


class LiveApi:
    """`with LiveApi(tmp_path, broker, **settings) as api:` ... `api.client(Role.ADMIN)`."""

    def __init__(self, tmp: Path, broker: Any, **settings: Any) -> None:
        self.topics = Topics(site="t" + uuid.uuid4().hex[:10])
        values: dict[str, Any] = {
            "site": self.topics.site, "port": 0, "accounts": str(tmp / "api.db"),
            "store": str(tmp / "core.db"), "command_timeout_s": 2.0,
            "broker": {"host": broker.host, "port": broker.port},
        }  # fmt: skip
        values.update(settings)
        self.settings = ApiSettings(**values)
        self.broker = broker
        self.accounts = open_accounts(self.settings.accounts)
        for role, (username, name, agent) in USERS.items():
            self.accounts.create_user(username=username, password=PASSWORD, full_name=name,
                                      role=role, agent=agent)  # fmt: skip
        self._tokens: dict[Role, str] = {}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True,
                                        name="live-api")  # fmt: skip
        self.service = ApiService(self.settings, accounts=self.accounts)
        self._mqtt: paho.Client | None = None

    def __enter__(self) -> LiveApi:
        self._thread.start()
        self.call(self.service.__aenter__())
        self.call(self.service.app.state.services.floor.wait_connected(10))
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.call(self.service.__aexit__(None, None, None))
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop.close()
            self.accounts.close()
            if self._mqtt is not None:
                self._mqtt.loop_stop()
                self._mqtt.disconnect()

    def call(self, coroutine: Any, timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    @property
    def url(self) -> str:
        return self.service.url

    @property
    def floor(self) -> Any:
        return self.service.app.state.services.floor

    def login(self, role: Role) -> str:
        """The role's token, logged in once (an agent's next login would end it)."""
        if role not in self._tokens:
            self._tokens[role] = self.new_login(role)
        return self._tokens[role]

    def new_login(self, role: Role, *, password: str = PASSWORD) -> str:
        r = httpx.post(self.url + "/auth/token",
                       data={"username": USERS[role][0], "password": password})  # fmt: skip
        assert r.status_code == 200, r.text
        token: str = r.json()["access_token"]
        if role is Role.AGENT:
            self._tokens.pop(role, None)  # one live session per agent: the earlier one ended
        return token

    def client(self, role: Role | None = None, *, token: str | None = None) -> httpx.Client:
        headers = {}
        if role is not None or token is not None:
            headers["Authorization"] = f"Bearer {token or self.login(role)}"  # type: ignore[arg-type]
        return httpx.Client(base_url=self.url, headers=headers, timeout=20)

    # --- the floor's side of MQTT --------------------------------------------------------

    def mqtt(self) -> paho.Client:
        if self._mqtt is None:
            c = paho.Client(paho.CallbackAPIVersion.VERSION2)
            c.connect(self.broker.host, self.broker.port)
            c.loop_start()
            self._mqtt = c
        return self._mqtt

    def publish(self, name: str, body: Mapping[str, Any] | bytes | None, *,
                retain: bool | None = None, **ids: str) -> None:  # fmt: skip
        from gateway.contract.topics import TOPICS

        spec = TOPICS[name]
        payload = b"" if body is None else body if isinstance(body, bytes) else json.dumps(body)
        info = self.mqtt().publish(self.topics.topic(name, **ids), payload, qos=1,
                                   retain=spec.retained if retain is None else retain)  # fmt: skip
        info.wait_for_publish(5)


def seat_state(seat: str, *, state: str = "ready", reason: str | None = None,
               call: int | None = None, since: float = 0.0, gateway: str = "gw1",
               t: float = 0.0) -> dict[str, Any]:  # fmt: skip
    return {"v": 1, "seat": seat, "gateway": gateway, "board": "5EA70001", "boot": 1,
            "state": state, "reason": reason, "call": call, "since": since, "help": False,
            "off_hook": state in ("talking", "hold"), "hold_over_limit": False,
            "pending": None, "misses": 0, "t": t}  # fmt: skip
