"""Schemathesis fuzzes the served OpenAPI document against a real ``authbridge run``, with a valid admin key.

Every operation gets a bounded number of generated requests (valid and invalid ones); no answer may be a
5xx, and every answer must match what the document declares for that operation: its status code, its
content type and its body's schema (error answers included: ``api/errors.py``'s one error shape).
"""

from __future__ import annotations

import typing
from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import checks
from schemathesis.core.result import Ok
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi import checks as openapi_checks

from tests.servers.authbridge import Running, running_authbridge

#: Examples per operation: about 25 operations, so a few hundred requests in all (well under a minute).
EXAMPLES = 12

_CHECKS = [
    checks.not_a_server_error,
    openapi_checks.status_code_conformance,
    openapi_checks.content_type_conformance,
    openapi_checks.response_schema_conformance,
    openapi_checks.negative_data_rejection,
]


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """A server with one integration and one connection, so that some generated ids exist."""
    with running_authbridge(tmp_path_factory.mktemp("fuzz")) as running:
        spec = {
            "key": "fuzzed",
            "name": "Fuzzed",
            "auth": {"type": "api_token"},
            "request": {"base_url": "https://api.example.com"},
        }
        assert httpx.put(f"{running.url}/integrations/fuzzed", json=spec, headers=running.headers).status_code == 201
        yield running


def _fuzz(operation: typing.Any, mode: GenerationMode, running: Running) -> str | None:
    """Run one operation's examples in one mode; the failure's text, or None."""

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: the first failure is reported as found
    )
    def run(case: typing.Any) -> None:
        case.call_and_validate(base_url=running.url, headers=running.headers, checks=_CHECKS, timeout=30)

    try:
        run()
    except Unsatisfiable:  # nothing to make invalid (no parameters, no body): nothing to test in that mode
        return None
    except BaseException as exc:  # a check's failure group, reported with the operation it came from
        if isinstance(exc, KeyboardInterrupt):
            raise
        return f"{operation.label} ({mode.value}): {exc}"
    return None


def test_the_api_keeps_its_document(fuzzed: Running) -> None:
    """No 5xx, and every answer is one the document declares, in its declared shape (valid and invalid input).

    Schemathesis' own pytest plugin does not run under this pytest, so the operations are walked here,
    each with Hypothesis and schemathesis' strategies and checks.
    """
    loaded = schemathesis.openapi.from_url(f"{fuzzed.url}/openapi.json")
    operations = []
    for result in loaded.get_all_operations():
        assert isinstance(result, Ok), result.err()  # the served document is a valid OpenAPI document
        operations.append(result.ok())
    assert len(operations) >= 20
    failures = [
        failure
        for operation in operations
        for mode in GenerationMode
        if (failure := _fuzz(operation, mode, fuzzed)) is not None
    ]
    assert not failures, "\n\n".join(failures)


def test_the_document_declares_the_error_shape_everywhere(fuzzed: Running) -> None:
    """Every operation that takes a key declares 401 and 422 with the error schema; every one declares 500."""
    document = httpx.get(f"{fuzzed.url}/openapi.json").json()
    error_ref = "#/components/schemas/ErrorResponse"
    for path, item in document["paths"].items():
        for method, operation in item.items():
            responses = operation["responses"]
            assert "500" in responses, (method, path)
            if operation.get("security"):
                for status in ("401", "422"):
                    schema_ = responses[status]["content"]["application/json"]["schema"]
                    assert schema_ == {"$ref": error_ref}, (method, path, status)


__all__: typing.Sequence[str] = ()


def test_a_body_that_is_not_utf8_is_the_usual_422(fuzzed: Running) -> None:
    """A JSON body that is not even UTF-8 gets the invalid-JSON 422 in the error shape (it was a bare 400)."""
    for path in ("/connections", "/connect/sessions"):
        response = httpx.post(
            f"{fuzzed.url}{path}",
            content=b"\xff\xfe{\x80}",
            headers={**fuzzed.headers, "Content-Type": "application/json"},
        )
        assert response.status_code == 422, response.text
        error = response.json()["error"]
        assert error["code"] == "invalid_request"
        assert error["errors"] == [{"path": "", "message": "the body is not valid JSON: it is not UTF-8 text"}]
