"""Where secrets go, and which updates move them (pure logic).

The store refuses such updates (tests/store/test_secret_moves.py), the API answers 422
(tests/api/test_secret_moves_api.py), and a refused move keeps refreshes on the original token
endpoint of a real server (tests/api/test_secret_moves_e2e.py).
"""

from __future__ import annotations

import typing

import pytest

from authbridge.spec import Integration, validate_spec
from authbridge.spec.destinations import (
    client_secret_destinations,
    connection_secret_destinations,
    move_problems,
    origin_of,
)

Json = dict[str, typing.Any]


def spec(**auth: typing.Any) -> Json:
    base: Json = {
        "key": "acme",
        "name": "Acme",
        "parameters": [{"name": "tenant", "pattern": "^[a-z]+$"}, {"name": "apiSecret", "secret": True}],
        "auth": {
            "type": "oauth2",
            "grant_type": "authorization_code",
            "authorization_url": "https://login.acme.example/authorize",
            "token_url": "https://login.acme.example/oauth/token",
            "client_id": "abc",
            "client_secret": "s3cret",
            **auth,
        },
        "request": {"base_url": "https://api.acme.example/v1"},
    }
    return base


def model(data: Json) -> Integration:
    return validate_spec(data)


def changed(data: Json, path: str, value: typing.Any) -> Json:
    """A copy of ``data`` with the dotted ``path`` set to ``value``."""
    copy = validate_spec(data).model_dump(mode="json", by_alias=True)
    copy["auth"]["client_secret"] = data["auth"].get("client_secret")
    node = copy
    *parents, last = path.split(".")
    for step in parents:
        node = node.setdefault(step, {})
    node[last] = value
    return copy


@pytest.mark.parametrize(
    ("template", "origin", "names"),
    [
        ("https://login.acme.example/oauth/token", "https://login.acme.example", set()),
        ("HTTPS://Login.ACME.example:443/x?y=1", "https://login.acme.example", set()),
        ("http://127.0.0.1:80/x", "http://127.0.0.1", set()),
        ("https://login.acme.example:8443/x", "https://login.acme.example:8443", set()),
        ("https://{tenant}.acme.example/x/{id}", "https://{tenant}.acme.example", {"tenant"}),
        ("{credentials.instance_url}/services", "{credentials.instance_url}", {"credentials.instance_url"}),
        ("https://acme.example?next=https://evil.example", "https://acme.example", set()),
    ],
)
def test_origin_of_a_template(template: str, origin: str, names: set[str]) -> None:
    """The origin is scheme, host and port as written, lower-cased, without the default port or the path."""
    assert origin_of(template) == (origin, frozenset(names))


def test_a_path_change_on_the_same_host_moves_nothing() -> None:
    """Changing only the path (or the case of the host, or an explicit default port) keeps the destination."""
    old = spec()
    new = changed(old, "auth.token_url", "https://LOGIN.acme.example:443/v2/token")
    assert move_problems(model(old), model(new), client_secret_kept=True, connections=5) == []


def test_a_new_token_host_with_the_kept_client_secret_is_refused() -> None:
    """The stored client secret may not go to a new token host unless it is given again."""
    old = spec()
    new = changed(old, "auth.token_url", "https://attacker.example/token")
    problems = move_problems(model(old), model(new), client_secret_kept=True, connections=0)
    assert [p.path for p in problems] == ["auth.token_url"]
    assert "https://attacker.example" in problems[0].message
    assert "give auth.client_secret again" in problems[0].message
    assert move_problems(model(old), model(new), client_secret_kept=False, connections=0) == []


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("auth.revoke_url", "https://attacker.example/revoke"),
        ("refresh.request", {"url": "https://attacker.example/refresh"}),
        ("auth.token_url", ["https://login.acme.example/token", "https://attacker.example/token"]),
        ("auth.token_url", "https://login.acme.example:8443/token"),
        ("auth.token_url", "http://login.acme.example/token"),
    ],
)
def test_every_url_that_receives_the_client_secret_is_compared(path: str, value: typing.Any) -> None:
    """Revocation and refresh URLs, alternatives, another port or scheme: each new origin is a move."""
    old = spec()
    problems = move_problems(model(old), model(changed(old, path, value)), client_secret_kept=True, connections=0)
    assert problems, path
    assert problems[0].path == (path if path != "refresh.request" else "refresh.request.url")


def test_a_revocation_url_on_a_host_that_already_had_the_secret_is_not_a_move() -> None:
    """A new URL on a host the secret already went to (token URL) moves nothing."""
    old = spec()
    new = changed(old, "auth.revoke_url", "https://login.acme.example/revoke")
    assert move_problems(model(old), model(new), client_secret_kept=True, connections=3) == []


def test_widening_what_a_host_placeholder_accepts_is_a_move() -> None:
    """The same template with a wider enum for its host parameter can reach new hosts."""
    old = spec(token_url="https://{region}/token")
    old["parameters"].append({"name": "region", "enum": ["eu.acme.example"]})
    new = model(old).model_dump(mode="json", by_alias=True)
    new["auth"]["client_secret"] = "s3cret"
    new["parameters"][2]["enum"] = ["eu.acme.example", "attacker.example"]
    problems = move_problems(model(old), model(new), client_secret_kept=True, connections=0)
    assert [p.path for p in problems] == ["auth.token_url"]


@pytest.mark.parametrize(
    ("before", "after", "moved"),
    [
        ({"enum": ["eu.acme.example", "us.acme.example"]}, {"enum": ["eu.acme.example"]}, False),
        ({}, {"enum": ["eu.acme.example"]}, False),
        ({}, {"hosts": ["*.acme.example"]}, False),
        ({"hosts": ["*.acme.example"]}, {"hosts": ["login.acme.example", "*.eu.acme.example"]}, False),
        ({"hosts": ["*.acme.example"]}, {"hosts": ["acme.example"]}, True),
        ({"hosts": ["login.acme.example"]}, {"hosts": ["*.login.acme.example"]}, True),
        ({"hosts": ["*.acme.example"]}, {}, True),
        ({"enum": ["eu.acme.example"]}, {"enum": ["eu.acme.example"], "pattern": "^eu"}, False),
        ({"pattern": "^eu"}, {"pattern": "^e"}, True),
        ({"enum": ["eu.acme.example"], "default": "eu.acme.example"}, {"enum": ["eu.acme.example"]}, False),
    ],
)
def test_narrowing_a_host_parameter_is_not_a_move(before: Json, after: Json, moved: bool) -> None:
    """A subset of the enum or hosts, or an added constraint, admits no new host; anything else is a move."""
    old = spec(token_url="https://{region}.acme.example/token")
    old["parameters"].append({"name": "region", **before})
    new = spec(token_url="https://{region}.acme.example/token")
    new["parameters"].append({"name": "region", **after})
    problems = move_problems(model(old), model(new), client_secret_kept=False, connections=1)
    assert bool(problems) is moved


def test_connection_secrets_may_not_move_while_accounts_exist() -> None:
    """A new base URL host would receive the accounts' tokens and secret headers: refused, secret or not."""
    old = spec()
    old["request"]["headers"] = {"X-Key": "{apiSecret}"}
    new = changed(old, "request.base_url", "https://attacker.example/v1")
    problems = move_problems(model(old), model(new), client_secret_kept=False, connections=2)
    assert [p.path for p in problems] == ["request.base_url"]
    assert "2 connected accounts" in problems[0].message
    assert "--move-secrets" in problems[0].message
    assert move_problems(model(old), model(new), client_secret_kept=False, connections=0) == []


def test_a_token_host_with_a_new_client_secret_still_keeps_refresh_tokens() -> None:
    """Giving a (possibly invented) client secret does not let accounts' refresh tokens follow a new token URL."""
    old = spec()
    new = changed(old, "auth.token_url", "https://attacker.example/token")
    new["auth"]["client_secret"] = "chosen-by-the-caller"
    problems = move_problems(model(old), model(new), client_secret_kept=False, connections=1)
    assert [p.path for p in problems] == ["auth.token_url"]
    assert "1 connected account " in problems[0].message


def test_a_detour_through_a_grant_without_account_secrets_is_caught() -> None:
    """Client credentials on the new host passes (no account secret goes there); switching back is a move."""
    old = spec()
    detour = changed(old, "auth.token_url", "https://attacker.example/token")
    detour["auth"]["grant_type"] = "client_credentials"
    detour["auth"]["client_secret"] = "invented"
    assert move_problems(model(old), model(detour), client_secret_kept=False, connections=1) == []
    back = {**detour, "auth": {**detour["auth"], "grant_type": "authorization_code"}}
    problems = move_problems(model(detour), model(back), client_secret_kept=False, connections=1)
    assert [p.path for p in problems] == ["auth.token_url"]


def test_client_credentials_token_url_carries_no_account_secret() -> None:
    """A client-credentials token request sends only the client's own credentials."""
    data = spec(grant_type="client_credentials")
    del data["auth"]["authorization_url"]
    assert "auth.token_url" not in {d.field for d in connection_secret_destinations(model(data))}
    data["auth"]["token_params"] = {"key": "{apiSecret}"}
    assert "auth.token_url" in {d.field for d in connection_secret_destinations(model(data))}


def test_base_url_of_an_integration_without_auth_carries_secrets_only_when_it_places_them() -> None:
    """With ``auth: none`` the base URL receives only what headers and query put there."""
    data: Json = {
        "key": "open",
        "name": "Open",
        "parameters": [{"name": "apiSecret", "secret": True}, {"name": "team"}],
        "request": {"base_url": "https://api.open.example", "headers": {"X-Team": "{team}"}},
    }
    assert connection_secret_destinations(model(data)) == []
    data["request"]["query"] = {"key": "{apiSecret}"}
    assert [d.field for d in connection_secret_destinations(model(data))] == ["request.base_url"]


def test_client_secret_destinations_are_oauth2_only() -> None:
    """Custom token integrations hold no client secret."""
    data: Json = {
        "key": "legacy",
        "name": "Legacy",
        "auth": {"type": "custom_token", "token_url": "https://login.legacy.example/login"},
    }
    assert client_secret_destinations(model(data)) == []
    assert [d.origin for d in client_secret_destinations(model(spec()))] == ["https://login.acme.example"]
