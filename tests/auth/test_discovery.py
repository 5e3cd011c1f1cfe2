"""The pure parts of authorization server discovery: which URLs, which issuer, which fields."""

from __future__ import annotations

import typing
from collections.abc import Generator

import httpx
import pytest

from authbridge.auth.discovery import (
    MAX_METADATA_BYTES,
    challenge_params,
    fields_from_metadata,
    metadata_flow,
    metadata_urls,
    protected_resource_flow,
)
from authbridge.errors import UpstreamError
from tests.auth.flows import drive

ISSUER = "https://login.acme.example"


def no_http(_host: str) -> bool:
    return False


def answering(
    flow: Generator[httpx.Request, httpx.Response, dict[str, typing.Any]], answers: dict[str, httpx.Response]
) -> tuple[list[str], dict[str, typing.Any]]:
    """Drive the flow: each requested URL gets its answer (404 when none); the URLs asked and the result."""
    asked: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        asked.append(str(request.url))
        return answers.get(str(request.url), httpx.Response(404))

    return asked, drive(flow, answer)


def run(source: str, answers: dict[str, httpx.Response]) -> tuple[list[str], dict[str, typing.Any]]:
    return answering(metadata_flow(source, allow_http=no_http), answers)


def test_urls_for_an_issuer_without_path() -> None:
    assert metadata_urls(ISSUER) == [
        (f"{ISSUER}/.well-known/oauth-authorization-server", ISSUER),
        (f"{ISSUER}/.well-known/openid-configuration", ISSUER),
    ]


def test_urls_for_an_issuer_with_path_in_the_mcp_order() -> None:
    assert metadata_urls(f"{ISSUER}/tenant/1/") == [
        (f"{ISSUER}/.well-known/oauth-authorization-server/tenant/1", f"{ISSUER}/tenant/1"),
        (f"{ISSUER}/.well-known/openid-configuration/tenant/1", f"{ISSUER}/tenant/1"),
        (f"{ISSUER}/tenant/1/.well-known/openid-configuration", f"{ISSUER}/tenant/1"),
    ]


@pytest.mark.parametrize(
    ("url", "issuer"),
    [
        (f"{ISSUER}/.well-known/openid-configuration", ISSUER),
        (f"{ISSUER}/.well-known/oauth-authorization-server/tenant", f"{ISSUER}/tenant"),
        (f"{ISSUER}/tenant/.well-known/openid-configuration", f"{ISSUER}/tenant"),
    ],
)
def test_a_metadata_url_is_its_own_document(url: str, issuer: str) -> None:
    assert metadata_urls(url) == [(url, issuer)]


def test_oidc_configuration_when_oauth_metadata_is_missing() -> None:
    document = {
        "issuer": ISSUER,
        "authorization_endpoint": f"{ISSUER}/authorize",
        "token_endpoint": f"{ISSUER}/token",
        "authorization_response_iss_parameter_supported": True,
    }
    asked, fields = run(ISSUER, {f"{ISSUER}/.well-known/openid-configuration": httpx.Response(200, json=document)})
    assert asked == [f"{ISSUER}/.well-known/oauth-authorization-server", f"{ISSUER}/.well-known/openid-configuration"]
    assert fields == {"authorization_url": f"{ISSUER}/authorize", "token_url": f"{ISSUER}/token", "issuer": ISSUER}


def test_braces_in_an_endpoint_are_literal() -> None:
    """A metadata URL is not a template: its braces are escaped so nothing in it is evaluated."""
    fields = fields_from_metadata(
        {"issuer": ISSUER, "token_endpoint": f"{ISSUER}/t/{{client_secret}}"},
        issuer=ISSUER,
        where="x",
        allow_http=no_http,
    )
    assert fields["token_url"] == f"{ISSUER}/t/{{{{client_secret}}}}"


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        ({"issuer": "https://evil.example"}, "names another issuer"),
        ({"token_endpoint": f"{ISSUER}/token"}, "names another issuer"),
        ({"issuer": ISSUER, "token_endpoint": 7}, "invalid token_endpoint"),
        ({"issuer": ISSUER, "token_endpoint": "x" * 3000}, "invalid token_endpoint"),
        ({"issuer": ISSUER, "token_endpoint": "/token"}, "not an absolute https URL"),
        ({"issuer": ISSUER, "token_endpoint": "javascript:alert(1)"}, "not an absolute https URL"),
        ({"issuer": ISSUER, "token_endpoint": "https://user:pw@login.acme.example/t"}, "not an absolute https URL"),
        ({"issuer": ISSUER, "authorization_endpoint": "http://login.acme.example/a"}, "is not https"),
    ],
)
def test_refused_documents(document: dict[str, typing.Any], reason: str) -> None:
    with pytest.raises(UpstreamError, match=reason):
        fields_from_metadata(document, issuer=ISSUER, where="https://x", allow_http=no_http)


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (httpx.Response(500), "answered HTTP 500"),
        (httpx.Response(200, text="<html>"), "is not JSON"),
        (httpx.Response(200, json=["issuer"]), "is not a JSON object"),
        (httpx.Response(200, content=b" " * (MAX_METADATA_BYTES + 1)), "larger than"),
    ],
)
def test_broken_answers(answer: httpx.Response, reason: str) -> None:
    with pytest.raises(UpstreamError, match=reason):
        run(ISSUER, {f"{ISSUER}/.well-known/oauth-authorization-server": answer})


def test_nothing_found_names_every_url() -> None:
    with pytest.raises(UpstreamError, match="no authorization server metadata found") as caught:
        run(ISSUER, {})
    assert "openid-configuration" in str(caught.value)


RESOURCE = "https://mcp.acme.example/mcp"
PRM = {"resource": RESOURCE, "authorization_servers": [ISSUER], "scopes_supported": ["files:read"]}
AS_METADATA = {
    "issuer": ISSUER,
    "authorization_endpoint": f"{ISSUER}/authorize",
    "token_endpoint": f"{ISSUER}/token",
    "code_challenge_methods_supported": ["S256"],
}


def run_resource(answers: dict[str, httpx.Response]) -> tuple[list[str], dict[str, typing.Any]]:
    return answering(protected_resource_flow(RESOURCE, allow_http=no_http), answers)


def test_challenge_params() -> None:
    header = 'Bearer realm="x", resource_metadata="https://a.example/m", scope="a b", error=invalid_token'
    assert challenge_params(header) == {
        "realm": "x",
        "resource_metadata": "https://a.example/m",
        "scope": "a b",
        "error": "invalid_token",
    }


def test_resource_without_a_challenge_tries_the_well_known_urls() -> None:
    """No 401 hint: the path-inserted URL, then the root; scopes from the metadata's scopes_supported."""
    answers = {
        "https://mcp.acme.example/.well-known/oauth-protected-resource": httpx.Response(200, json=PRM),
        f"{ISSUER}/.well-known/oauth-authorization-server": httpx.Response(200, json=AS_METADATA),
    }
    asked, fields = run_resource(answers)
    assert asked[:3] == [
        RESOURCE,
        "https://mcp.acme.example/.well-known/oauth-protected-resource/mcp",
        "https://mcp.acme.example/.well-known/oauth-protected-resource",
    ]
    assert fields["resource"] == RESOURCE and fields["scopes"] == ["files:read"]


@pytest.mark.parametrize(
    ("answers", "reason"),
    [
        (
            {RESOURCE: httpx.Response(401, headers={"WWW-Authenticate": 'Bearer resource_metadata="ftp://x/y"'})},
            "unusable",
        ),
        (
            {
                RESOURCE: httpx.Response(
                    401, headers={"WWW-Authenticate": 'Bearer resource_metadata="http://x.example/y"'}
                )
            },
            "not https",
        ),
        ({}, "no protected resource metadata found"),
    ],
)
def test_resource_metadata_refusals(answers: dict[str, httpx.Response], reason: str) -> None:
    with pytest.raises(UpstreamError, match=reason):
        run_resource(answers)


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        ({"resource": RESOURCE}, "names no authorization server"),
        ({"resource": RESOURCE, "authorization_servers": []}, "names no authorization server"),
        ({"resource": RESOURCE, "authorization_servers": ["http://login.acme.example"]}, "not https"),
    ],
)
def test_resource_metadata_without_a_usable_server(document: dict[str, typing.Any], reason: str) -> None:
    hint = 'Bearer resource_metadata="https://mcp.acme.example/prm"'
    answers = {
        RESOURCE: httpx.Response(401, headers={"WWW-Authenticate": hint}),
        "https://mcp.acme.example/prm": httpx.Response(200, json=document),
    }
    with pytest.raises(UpstreamError, match=reason):
        run_resource(answers)


def test_metadata_without_pkce_methods_is_refused_for_a_resource() -> None:
    answers = {
        "https://mcp.acme.example/.well-known/oauth-protected-resource/mcp": httpx.Response(200, json=PRM),
        f"{ISSUER}/.well-known/oauth-authorization-server": httpx.Response(
            200, json={k: v for k, v in AS_METADATA.items() if k != "code_challenge_methods_supported"}
        ),
    }
    with pytest.raises(UpstreamError, match="S256"):
        run_resource(answers)
