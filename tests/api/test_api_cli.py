"""`seatlink api` as facilities run it: the first admin from the command line, the server as
a process (HTTPS too), SIGTERM ends it with 0, and a settings mistake exits 2 naming it."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

ADMIN_PASSWORD = "Correct horse 9!"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _seatlink(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway.cli", "api", *args],
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})})  # fmt: skip


def _config(tmp: Path, broker: Any, port: int, extra: str = "") -> Path:
    path = tmp / "api.toml"
    path.write_text(f'site = "cli"\nport = {port}\naccounts = "accounts.db"\n{extra}'
                    f'[broker]\nhost = "{broker.host}"\nport = {broker.port}\n')  # fmt: skip
    return path


def _serve(config: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "api", "-c", str(config)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip


def _until_up(url: str, proc: subprocess.Popen[str], **kw: Any) -> httpx.Response:
    deadline = time.monotonic() + 30
    while True:
        assert proc.poll() is None, proc.communicate()[0]
        try:
            return httpx.get(url + "/health", timeout=2, **kw)
        except httpx.TransportError:
            assert time.monotonic() < deadline, "the API did not come up in 30 s"
            time.sleep(0.2)


def _stop(proc: subprocess.Popen[str]) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)
        raise


def test_first_admin_then_serve_then_sigterm(tmp_path: Path, mqtt_broker: Any) -> None:
    port = _port()
    config = _config(tmp_path, mqtt_broker, port)
    secret = {"SEATLINK_API_NEW_PASSWORD": ADMIN_PASSWORD}
    added = _seatlink("-c", str(config), "--add-user", "ann.lee", "--role", "admin",
                      "--full-name", "Ann Lee", env=secret)  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert (tmp_path / "accounts.db").exists()  # relative to the settings file
    again = _seatlink("-c", str(config), "--add-user", "ann.lee", "--role", "admin",
                      "--full-name", "Ann Lee", env=secret)  # fmt: skip
    assert again.returncode == 2 and "ann.lee" in again.stderr
    proc = _serve(config)
    try:
        url = f"http://127.0.0.1:{port}"
        assert _until_up(url, proc).json()["ok"] is True
        r = httpx.post(url + "/auth/token", data={"username": "ann.lee",
                                                  "password": ADMIN_PASSWORD})  # fmt: skip
        assert r.status_code == 200 and r.json()["must_change_password"] is False, r.text
        assert httpx.get(url + "/docs").status_code == 200
        assert "seatlink wallboard" in httpx.get(url + "/wallboard/").text
    finally:
        status = _stop(proc)
    assert status == 0


def test_https_when_a_certificate_is_given(tmp_path: Path, mqtt_broker: Any) -> None:
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(tmp_path / "key.pem"), "-out", str(tmp_path / "cert.pem")],
                   check=True, capture_output=True)  # fmt: skip
    port = _port()
    config = _config(tmp_path, mqtt_broker, port,
                     'tls_certfile = "cert.pem"\ntls_keyfile = "key.pem"\n')  # fmt: skip
    proc = _serve(config)
    try:
        trust = ssl.create_default_context(cafile=str(tmp_path / "cert.pem"))
        r = _until_up(f"https://127.0.0.1:{port}", proc, verify=trust)
        assert r.json()["ok"] is True
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)  # no plain HTTP
    finally:
        assert _stop(proc) == 0


@pytest.mark.parametrize(("extra", "says"), [
    ('port = "eighty"\n', "port"),
    ('tls_certfile = "cert.pem"\n', "tls_certfile and tls_keyfile go together"),
    ('timezone = "Mars/Olympus"\n', "unknown time zone"),
    ('colour = "blue"\n', "colour"),
])  # fmt: skip
def test_settings_mistakes_exit_2_naming_the_key(tmp_path: Path, extra: str, says: str) -> None:
    path = tmp_path / "api.toml"
    path.write_text(extra)
    done = _seatlink("-c", str(path))
    assert done.returncode == 2
    assert says in done.stderr
