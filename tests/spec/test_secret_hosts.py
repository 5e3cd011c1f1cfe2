"""A connection's parameters cannot choose the host that receives the integration's client secret.

The API refuses such a spec with 422 (tests/api/test_secret_moves_api.py).
"""

from __future__ import annotations

import typing
from pathlib import Path

import pytest

from authbridge.errors import ParameterError, SpecError
from authbridge.spec import check_parameter_values, load_spec, validate_spec
from authbridge.spec.secret_hosts import host_allowed

Json = dict[str, typing.Any]
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def spec(token_url: str, *params: Json, client_secret: str | None = "s3cret", **auth: typing.Any) -> Json:
    data: Json = {
        "key": "acme",
        "name": "Acme",
        "parameters": list(params) or [{"name": "host"}],
        "auth": {
            "type": "oauth2",
            "grant_type": "client_credentials",
            "token_url": token_url,
            "client_id": "abc",
            **auth,
        },
    }
    if client_secret is not None:
        data["auth"]["client_secret"] = client_secret
    return data


def problems(data: Json) -> list[str]:
    try:
        validate_spec(data)
    except SpecError as exc:
        return [str(item) for item in exc.errors]
    return []


@pytest.mark.parametrize(
    "token_url",
    [
        "https://{host}/oauth/token",
        "https://{host}.com/oauth/token",  # one label: anyone registers <value>.com
        "https://{host}acme.example/oauth/token",  # no dot: <value>acme.example is another domain
        "https://api.{host}.example/oauth/token",
        "https://user@{host}/oauth/token",
        "https://{host}:8443/oauth/token",
    ],
)
def test_a_user_chosen_host_for_the_client_secret_is_refused(token_url: str) -> None:
    """A parameter that decides the token host must be bounded by the spec."""
    found = problems(spec(token_url))
    assert len(found) == 1
    assert found[0].startswith("auth.token_url: receives the client secret, and {host} decides its host")
    assert "hosts: [...]" in found[0] and "a pattern cannot pin a host" in found[0]


@pytest.mark.parametrize(
    "token_url",
    [
        "https://{host}.acme.example/oauth/token",
        "https://api.{host}.acme.example/oauth/token",
        "https://{host}.acme.example./oauth/token",
        "https://login.acme.example:{host}/oauth/token",
        "https://login.acme.example/{host}/oauth/token",
    ],
)
def test_a_host_pinned_by_the_template_is_accepted(token_url: str) -> None:
    """A subdomain of a fixed domain, a port or a path: the spec keeps the host."""
    assert problems(spec(token_url, {"name": "host", "pattern": "^[a-z0-9]+$"})) == []


@pytest.mark.parametrize(
    ("param", "accepted"),
    [
        ({"name": "host", "pattern": "^[a-z]+\\.acme\\.example$"}, False),
        ({"name": "host", "pattern": ".*"}, False),
        ({"name": "host", "format": "hostname"}, False),
        ({"name": "host", "enum": ["eu.acme.example", "us.acme.example"]}, True),
        ({"name": "host", "hosts": ["*.acme.example"]}, True),
    ],
)
def test_what_bounds_a_whole_host(param: Json, accepted: bool) -> None:
    """Only a fixed list (enum) or a host allow-list (hosts) bounds a whole host; a pattern does not."""
    assert (problems(spec("https://{host}/oauth/token", param)) == []) is accepted


def test_a_whole_url_parameter_needs_an_allow_list() -> None:
    """A ``format: url`` parameter that fills the token URL must list its hosts."""
    found = problems(spec("{base}/oauth/token", {"name": "base", "format": "url"}))
    assert found == [
        "auth.token_url: receives the client secret, and {base} supplies the whole URL: list the allowed hosts of "
        "{base} in hosts: [...] or its values in enum (a pattern cannot pin a host)"
    ]
    assert (
        problems(spec("{base}/oauth/token", {"name": "base", "format": "url", "hosts": ["login.acme.example"]})) == []
    )


@pytest.mark.parametrize("field", ["revoke_url", "refresh"])
def test_revocation_and_refresh_urls_are_checked_too(field: str) -> None:
    """Every URL the client secret goes to is held to the same rule."""
    data = spec("https://login.acme.example/token")
    if field == "revoke_url":
        data["auth"]["revoke_url"] = "https://{host}/revoke"
        path = "auth.revoke_url"
    else:
        data["refresh"] = {"request": {"url": "https://{host}/refresh"}}
        path = "refresh.request.url"
    assert [p.split(":")[0] for p in problems(data)] == [path]


def test_without_a_client_secret_of_its_own_the_host_may_be_chosen() -> None:
    """A public client, or a secret that is the connection's own parameter, has nothing of the spec's to leak."""
    assert problems(spec("https://{host}/token", client_secret=None)) == []
    own = spec("https://{host}/token", {"name": "host"}, {"name": "cs", "secret": True}, client_secret="{cs}")
    assert problems(own) == []
    assert problems(spec("https://{host}/token", client_secret="********")) != []  # the stored secret is kept


def test_a_field_captured_from_the_redirect_cannot_choose_the_host() -> None:
    """``callback.capture`` fields come from the user's browser; token response fields come from the provider."""
    data = spec("https://login.acme.example/token", revoke_url="{credentials.site}/revoke")
    data["auth"]["grant_type"] = "authorization_code"
    data["auth"]["authorization_url"] = "https://login.acme.example/authorize"
    assert problems(data) == []
    data["auth"]["callback"] = {"capture": ["site"]}
    assert [p.split(":")[0] for p in problems(data)] == ["auth.revoke_url"]


def test_the_examples_stay_valid() -> None:
    """acme (subdomain), salesforce (enum, connection's own secret) and the others pass."""
    for file in sorted(EXAMPLES.glob("*.yaml")):
        load_spec(file.read_text(encoding="utf-8"), source=str(file))


def test_values_outside_the_hosts_allow_list_are_refused() -> None:
    """``hosts`` is checked on every value: host names exactly, ``*.domain`` below the domain only."""
    integration = validate_spec(
        spec("https://{host}/token", {"name": "host", "hosts": ["login.acme.example", "*.eu.acme.example"]})
    )
    assert check_parameter_values(integration, {"host": "login.acme.example"}) == {"host": "login.acme.example"}
    assert check_parameter_values(integration, {"host": "A.EU.acme.example"}) == {"host": "A.EU.acme.example"}
    for value in ("attacker.example", "eu.acme.example", "login.acme.example.attacker.example", "xeu.acme.example"):
        with pytest.raises(ParameterError, match="must name one of the allowed hosts") as caught:
            check_parameter_values(integration, {"host": value})
        assert caught.value.errors[0].path == "parameters.host"


def test_a_url_value_is_checked_by_its_host() -> None:
    """For ``format: url`` the URL's host is what the allow-list bounds."""
    integration = validate_spec(
        spec("{base}/token", {"name": "base", "format": "url", "hosts": ["login.acme.example"]})
    )
    assert check_parameter_values(integration, {"base": "https://login.acme.example/x"})
    with pytest.raises(ParameterError, match=r"must name one of the allowed hosts: login\.acme\.example"):
        check_parameter_values(integration, {"base": "https://attacker.example"})


@pytest.mark.parametrize("entry", ["com", "*.com", "*", "a..b", "-a.example", "*.*.example"])
def test_hosts_entries_must_be_domains(entry: str) -> None:
    """An allow-list entry is a host name of two or more labels, or ``*.`` and one."""
    found = problems(spec("https://{host}/token", {"name": "host", "hosts": [entry]}))
    assert found and found[0].startswith("parameters.0.hosts:")


@pytest.mark.parametrize(
    ("host", "allowed", "expected"),
    [
        ("api.acme.example", ["api.acme.example"], True),
        ("API.acme.example.", ["api.acme.example"], True),
        ("x.api.acme.example", ["api.acme.example"], False),
        ("x.api.acme.example", ["*.api.acme.example"], True),
        ("api.acme.example", ["*.api.acme.example"], False),
        ("evilapi.acme.example", ["*.api.acme.example"], False),
    ],
)
def test_host_allowed(host: str, allowed: list[str], expected: bool) -> None:
    """Exact names match themselves; ``*.d`` matches names below ``d`` and not ``d`` itself."""
    assert host_allowed(host, allowed) is expected
