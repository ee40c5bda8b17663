"""Schemathesis against the API's own OpenAPI schema (/openapi.json): generated requests to
every documented endpoint, as an admin (every route open to it), must never get a 5xx and
every answer must match the schema. Bad input is a 4xx, never a crash."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from api_support import LiveApi
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
)

from gateway.api.accounts import Role

# a logout would end the token the rest of the run uses; its own tests are in test_api_auth
SKIPPED = ("/auth/logout",)


EXAMPLES = 50  # generated cases per endpoint


@pytest.fixture(scope="module")
def shared_api(tmp_path_factory: pytest.TempPathFactory, mqtt_broker: Any) -> Iterator[LiveApi]:
    # no core or PBX answers here: a command's wait for its result is kept short
    with LiveApi(tmp_path_factory.mktemp("api"), mqtt_broker, command_timeout_s=0.1) as api:
        yield api


def test_no_server_errors_and_answers_match_the_schema(shared_api: LiveApi) -> None:
    token = shared_api.login(Role.ADMIN)
    schema = schemathesis.openapi.from_url(shared_api.url + "/openapi.json")
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.path in SKIPPED:
            continue
        operations += 1

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))  # fmt: skip
        def run(case: Any) -> None:
            case.call_and_validate(headers={"Authorization": f"Bearer {token}"}, timeout=30,
                                   checks=[not_a_server_error, response_schema_conformance,
                                           content_type_conformance])  # fmt: skip

        try:
            run()
        except Exception as exc:  # every endpoint is tried; all failures are reported
            failures.append(f"{operation.method.upper()} {operation.path}: {str(exc)[:1500]}")
    assert operations >= 30
    assert not failures, "\n\n".join(failures)
