"""Schemathesis over the whole OpenAPI schema, once per role (and without a token), in-process
against the ASGI app: no server error, and every answer as documented (status, content type,
body schema). Bounded: a few examples per operation."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)
from test_api_support import FUND, World, serve

pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning"), pytest.mark.slow]

EXAMPLES_PER_OPERATION = 12
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp: Path = tmp_path_factory.mktemp("schema")
    now = datetime(2026, 11, 27, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
    with serve(f"sqlite:///{tmp / 'ledger.db'}", tmp, lambda: now) as w:
        w.open_fund()
        w.donate("1000.00")
        w.committed_grant("100.00")
        yield w


@pytest.mark.parametrize("role", [None, "admin", "treasurer", "committee", "auditor"])
def test_every_operation_answers_as_documented(world: World, role: str | None) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", world.api)
    headers = world.auth(role)
    failures: list[str] = []
    operations = 0
    statuses: set[int] = set()
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            derandomize=True,
            database=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def run(case: schemathesis.Case) -> None:
            if case.path_parameters and "slug" in case.path_parameters and role == "treasurer":
                case.path_parameters["slug"] = FUND  # reach the fund's rules, not only 404s
            response = case.call_and_validate(headers=headers, checks=CHECKS)
            statuses.add(response.status_code)

        try:
            run()
        except Exception as e:  # collect every operation's first failure
            failures.append(f"{operation.label}: {e}")
    assert operations >= 24
    assert {200, 404, 422} <= statuses  # the calls reached the routes
    assert not failures, "\n\n".join(failures)
