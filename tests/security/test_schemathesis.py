"""schemathesis against ``/api/schema/``: every operation, positive and negative cases, at least 1,000 requests
in all, with a valid token; no answer may be a 5xx, and every answer must fit the schema where it documents one.

The app is called in-process over WSGI (inside the test's database transaction). The sync endpoints run the
real cycle steps, with CoinGecko pointed at a local fake that knows no coin (404), so nothing leaves the
machine. Generation is derandomized, so CI sees the same requests every run.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from django.core.signals import request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from pytest_django import Settings
from schemathesis import Case, GenerationMode
from schemathesis.checks import CheckFunction, not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.schemas import APIOperation
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance
from schemathesis.specs.openapi.schemas import OpenApiSchema

from tests.fakes.coingecko import FakeCoinGecko
from tests.security.conftest import Seeded

#: Examples per operation and generation mode; 19 operations x 2 modes x 30 = 1,140 requests at most.
EXAMPLES = 30
MINIMUM_REQUESTS = 1_000
by_operation: defaultdict[str, Counter[int]] = defaultdict(Counter)


@pytest.fixture
def in_test_transaction(db: None) -> Iterator[None]:
    """Let the WSGI app run inside the test's transaction: like Django's test client, stop each request's
    start from closing the connection (it would, seeing the transaction's autocommit off)."""
    request_started.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)


@pytest.fixture
def schema(seeded: Seeded, in_test_transaction: None) -> OpenApiSchema:
    return schemathesis.openapi.from_wsgi(
        "/api/schema/", get_wsgi_application(), headers={"Authorization": f"Token {seeded.token}"}
    )


def test_the_schema_needs_a_token(in_test_transaction: None) -> None:
    with pytest.raises(Exception, match="401"):
        schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application())


def _fuzz(
    # schemathesis yields its operations unparameterized (``Result[APIOperation, InvalidSchema]``)
    operation: APIOperation[Any, Any, Any, Any],
    mode: GenerationMode,
    auth: dict[str, str],
    ids: dict[str, int],
    sent: Counter[str],
    statuses: Counter[int],
) -> None:
    """Send ``EXAMPLES`` generated cases of ``operation`` and check each answer. Positive cases use the saved
    object's id (a random one is a 404 before anything else runs); negative cases generate it too."""
    checks: list[CheckFunction] = [not_a_server_error]
    if mode is GenerationMode.POSITIVE:  # negative cases break the schema on purpose: 4xx, not its shapes
        checks += [response_schema_conformance, content_type_conformance]
    resource = operation.path.strip("/").split("/")[1]
    fixed = {"id": ids[resource]} if "{id}" in operation.path and mode is GenerationMode.POSITIVE else None

    @hypothesis_settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode, path_parameters=fixed))
    def run(case: Case[Any]) -> None:  # Any: the operation above is unparameterized too
        response = case.call(headers=auth)
        sent[operation.label] += 1
        statuses[response.status_code] += 1
        by_operation[operation.label][response.status_code] += 1
        case.validate_response(response, checks=checks, headers=auth)

    run()


def test_every_operation_answers_without_a_server_error(
    schema: OpenApiSchema, seeded: Seeded, fake_coingecko: FakeCoinGecko, settings: Settings
) -> None:
    settings.BARTER_BACKFILL_DAYS = 3  # the collect step asks the fake for a few days only
    auth = {"Authorization": f"Token {seeded.token}"}
    sent: Counter[str] = Counter()
    statuses: Counter[int] = Counter()
    operations = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result.err()  # an operation the schema cannot describe
        operations.append(result.ok())
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            _fuzz(operation, mode, auth, seeded.ids, sent, statuses)
    total = sum(sent.values())
    for label, counts in sorted(by_operation.items()):
        print(label, dict(counts))
    print(f"\nschemathesis: {total} requests over {len(operations)} operations; statuses {dict(statuses)}")
    assert len(operations) >= 15
    assert set(sent) == {operation.label for operation in operations}  # every one was called
    assert total >= MINIMUM_REQUESTS
    assert not any(status >= 500 for status in statuses)
    assert statuses[401] == 0 and statuses[403] == 0  # the token was sent with every case
