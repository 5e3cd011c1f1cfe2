"""Tests of YAML loading and dumping: round trips, line numbers, several documents, YAML mistakes.

The shipped example files are loaded and round-tripped in ``test_examples.py``; the messages
themselves are tested in ``test_validate.py``.
"""

from __future__ import annotations

import re
import typing
from datetime import timedelta

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from authbridge.errors import ErrorItem, SpecError
from authbridge.spec import (
    SECRET_MASK,
    Integration,
    OAuth1Auth,
    OAuth2Auth,
    dump_spec,
    format_duration,
    load_spec,
    load_specs,
    spec_to_dict,
    validate_spec,
)
from authbridge.spec.loader import MAX_DEPTH, MAX_NODES
from authbridge.spec.models import RESERVED_NAMES

SECRET = "Sup3r-S3cret-Value-42"


def masked(integration: Integration) -> Integration:
    """The integration as it reads back from a dump: the client secret replaced by the mask."""
    auth = integration.auth
    if isinstance(auth, OAuth2Auth | OAuth1Auth) and auth.client_secret is not None:
        return integration.model_copy(
            update={"auth": auth.model_copy(update={"client_secret": SecretStr(SECRET_MASK)})}
        )
    return integration


def round_trip(integration: Integration) -> None:
    assert load_spec(dump_spec(integration)) == masked(integration)


# Hand-built specs covering every block

EVERY_BLOCK = """\
key: acme
name: Acme CRM
description: Every block of DESIGN.md's example
parameters:
  - name: serverName
    label: Server
    required: true
    pattern: "^[a-z0-9-]+$"
    description: The part before .acme.example
    example: dev
    hidden: false
  - name: region
    enum: [eu, us]
    default: eu
  - name: base
    format: url
  - name: apiSecret
    secret: true
auth:
  type: oauth2
  grant_type: authorization_code
  authorization_url: https://{serverName}.acme.example/oauth2/authorize
  issuer: https://{serverName}.acme.example
  authorize_params: {prompt: consent, access_type: offline}
  token_url: https://{serverName}.acme.example/oauth2/v1/token
  token_method: post
  token_body: json
  token_headers: {X-Request-Id: "{uuid()}"}
  token_params: {audience: "https://api.acme.example"}
  revoke_url: https://{serverName}.acme.example/oauth2/revoke
  scopes: [read, write]
  scope_separator: ","
  client_id: abc
  client_secret: Sup3r-S3cret-Value-42
  client_auth: both
  pkce: false
  refresh_token: false
  token_response:
    access_token: [access_token, authed_user.access_token]
    refresh_token: refresh_token
    token_type: [token_type]
    scope: scope
    expires_in: {path: expires_in, unit: ms}
    expires_at: {path: expires_at, format: iso8601}
    default_ttl: 1h
    body: json
  callback:
    capture: [realmId]
  hooks:
    get_token_data: acme.hooks:token_data
    credentials_from_token_response: acme.hooks:credentials
    refresh_credentials: acme.hooks:refresh
    test: acme.hooks:test
token:
  in: header
  name: X-Access-Token
  template: "Token {token}"
request:
  base_url: ["{credentials.instance_url}/services/data", "{base}/api"]
  headers: {Accept: application/json, X-Key: "{apiSecret}"}
  query: {region: "{region}"}
refresh:
  window: 10m
  on_status: [401]
  min_ttl: 90s
  request:
    url: https://{serverName}.acme.example/oauth2/v1/refresh
    method: GET
    body: query
    headers: {X-Refresh: "1"}
    params: {grant_type: refresh_token, refresh_token: "{refresh_token}"}
test: {method: HEAD, path: /me, expect_status: [200, 204]}
"""


def test_a_spec_with_every_block_loads() -> None:
    """Every field of every block is read from YAML."""
    spec = load_spec(EVERY_BLOCK)
    assert isinstance(spec.auth, OAuth2Auth)
    assert spec.auth.token_method == "POST"
    assert spec.auth.hooks.refresh_credentials == "acme.hooks:refresh"
    assert spec.auth.token_response.default_ttl == timedelta(hours=1)
    assert spec.refresh.request is not None and spec.refresh.request.method == "GET"
    assert spec.test is not None and spec.test.expect_status == [200, 204]
    assert spec.client_secret == SECRET


def test_a_spec_with_every_block_round_trips() -> None:
    """Dumping and loading again gives an equal model, apart from the masked client secret."""
    round_trip(load_spec(EVERY_BLOCK))


@pytest.mark.parametrize(
    "auth",
    [
        {"type": "oauth2", "grant_type": "client_credentials", "token_url": "https://x.example/t", "client_id": "a"},
        {"type": "oauth2", "grant_type": "password", "token_url": "https://x.example/t"},
        {
            "type": "custom_token",
            "token_url": "https://x.example/login",
            "token_method": "GET",
            "token_body": "query",
            "token_params": {"user": "{username}", "password": "{password}"},
            "token_response": {"access_token": "data.token", "expires_in": None, "body": "text"},
            "ttl": "1h30m",
            "hooks": {"test": "legacy:test"},
        },
        {"type": "api_token", "hooks": {"get_token_data": "m:f"}},
        {"type": "basic"},
        {"type": "none"},
    ],
)
def test_every_auth_type_round_trips(auth: dict[str, typing.Any]) -> None:
    """Each auth type and grant dumps to YAML that loads back equal."""
    token = {"template": "Basic {base64(username:password)}"} if auth["type"] == "basic" else {}
    round_trip(validate_spec({"key": "x", "name": "X", "auth": auth, "token": token}))


def test_dump_masks_the_client_secret() -> None:
    """The YAML and the plain data show the mask, never the secret."""
    spec = load_spec(EVERY_BLOCK)
    text = dump_spec(spec)
    assert SECRET not in text
    assert f"client_secret: '{SECRET_MASK}'" in text
    assert spec_to_dict(spec)["auth"]["client_secret"] == SECRET_MASK


def test_dump_leaves_out_defaults_and_keeps_the_block_order() -> None:
    """A minimal spec dumps to key, name and auth type only, in the order of DESIGN.md."""
    assert dump_spec(load_spec("name: Giphy\nkey: giphy\n")) == "key: giphy\nname: Giphy\nauth:\n  type: none\n"
    assert list(spec_to_dict(load_spec(EVERY_BLOCK))) == [
        "key",
        "name",
        "description",
        "parameters",
        "auth",
        "token",
        "request",
        "refresh",
        "test",
    ]


def test_dump_writes_durations_and_the_in_field_as_written() -> None:
    """Durations come back as ``10m``, and the placement's location as ``in``."""
    data = spec_to_dict(load_spec(EVERY_BLOCK))
    assert (data["refresh"]["window"], data["refresh"]["min_ttl"]) == ("10m", "1m30s")
    assert data["token"] == {"name": "X-Access-Token", "template": "Token {token}"}
    query = spec_to_dict(validate_spec({"key": "g", "name": "G", "token": {"in": "query", "name": "k"}}))
    assert query["token"] == {"in": "query", "name": "k"}


@pytest.mark.parametrize(
    "text", ["a\x85b", "\x85", "line\nbreak", "  padded  ", "é ünïcödé 𝄞", "null", "'quoted'", "#x"]
)
def test_dump_writes_any_text_back_unchanged(text: str) -> None:
    """Text PyYAML mishandles (NEL, U+0085, folds to a space in plain style) and YAML look-alikes survive a dump."""
    spec = validate_spec(
        {"key": "x", "name": text, "description": text, "parameters": [{"name": "p", "default": text}]}
    )
    round_trip(spec)


def test_dump_keeps_an_explicitly_disabled_expiry() -> None:
    """``expires_in: null`` differs from the default and survives the round trip."""
    spec = validate_spec(
        {
            "key": "s",
            "name": "S",
            "auth": {"type": "custom_token", "token_url": "https://x.example", "token_response": {"expires_in": None}},
        }
    )
    assert "expires_in: null" in dump_spec(spec)
    round_trip(spec)


# Hypothesis-generated specs

NAMES = st.from_regex(r"[a-z][A-Za-z0-9_]{0,8}", fullmatch=True).filter(lambda name: name not in RESERVED_NAMES)
TEXT = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12)
WORD = st.text(
    st.characters(codec="utf-8", exclude_categories=["Cs", "Z", "C"], exclude_characters="{}"), min_size=1, max_size=8
)
LITERAL = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"], exclude_characters="{}"), max_size=8)
#: Literal text a header or the token template may hold: no control character but HTAB (and C1, e.g. NEL).
SENDABLE = st.text(
    st.characters(
        codec="utf-8",
        exclude_categories=["Cs"],
        exclude_characters="{}" + "".join(chr(c) for c in (*range(0x20), 0x7F) if c != 9),
    ),
    max_size=8,
)
HEADER = st.from_regex(r"X-[A-Za-z0-9-]{1,8}", fullmatch=True)
DURATION = st.integers(min_value=0, max_value=10**9).flatmap(
    lambda ms: st.sampled_from([format_duration(timedelta(milliseconds=ms)), ms // 1000, ms / 1000])
)


def maybe(draw: st.DrawFn, out: dict[str, typing.Any], key: str, strategy: st.SearchStrategy[typing.Any]) -> None:
    """Set ``out[key]`` to a drawn value, or leave it out (the field's default applies)."""
    if draw(st.booleans()):
        out[key] = draw(strategy)


@st.composite
def parameters(draw: st.DrawFn) -> list[dict[str, typing.Any]]:
    params = []
    for name in draw(st.lists(NAMES, unique=True, max_size=4)):
        param: dict[str, typing.Any] = {"name": name}
        for key, strategy in (("label", TEXT), ("description", TEXT), ("example", TEXT)):
            maybe(draw, param, key, strategy)
        for key in ("required", "hidden"):
            maybe(draw, param, key, st.booleans())
        kind = draw(st.sampled_from(["plain", "secret", "enum", "pattern", "format"]))
        if kind == "secret":
            param["secret"] = True
        elif kind == "plain":
            maybe(draw, param, "default", TEXT)
        elif kind == "enum":
            param["enum"] = draw(st.lists(WORD, min_size=1, max_size=3, unique=True))
            maybe(draw, param, "default", st.sampled_from(param["enum"]))
        elif kind == "pattern":
            param["pattern"] = "[a-z0-9-]+"
            maybe(draw, param, "default", st.from_regex(r"[a-z0-9-]+", fullmatch=True))
        else:
            param["format"] = draw(st.sampled_from(["hostname", "uuid", "email", "url"]))
        params.append(param)
    return params


@st.composite
def templates(draw: st.DrawFn, names: list[str], *, url: bool = False, header: bool = False) -> str | list[str]:
    """A template over the declared ``names`` (and literal braces), or a list of alternatives."""

    def one() -> str:
        use_ref = draw(st.booleans()) and bool(names)
        ref = f"{{{draw(st.sampled_from(names))}}}" if use_ref else ""
        if url:
            return f"https://{ref or 'x'}.example.com/{draw(st.sampled_from(['', 'v1', 'a{{b}}']))}"
        return draw(SENDABLE if header else LITERAL) + ref + draw(st.sampled_from(["", "{{", "}}"]))

    first = one()
    return [first, one()] if draw(st.booleans()) else first


def template_maps(draw: st.DrawFn, names: list[str], keys: st.SearchStrategy[str]) -> dict[str, typing.Any]:
    return draw(st.dictionaries(keys, templates(names, header=keys is HEADER), max_size=2))


@st.composite
def auth_blocks(draw: st.DrawFn, names: list[str]) -> dict[str, typing.Any]:
    kind = draw(st.sampled_from(["oauth2", "custom_token", "api_token", "basic", "none"]))
    auth: dict[str, typing.Any] = {"type": kind}
    if kind in ("oauth2", "custom_token"):
        auth["token_url"] = draw(templates(names, url=True))
        maybe(draw, auth, "token_method", st.sampled_from(["GET", "POST", "get", "post"]))
        maybe(draw, auth, "token_body", st.sampled_from(["form", "json", "query"]))
        auth["token_headers"] = template_maps(draw, names, HEADER)
        auth["token_params"] = template_maps(draw, names, WORD)
        maybe(
            draw,
            auth,
            "token_response",
            st.fixed_dictionaries(
                {},
                optional={
                    "access_token": st.one_of(WORD, st.lists(WORD, min_size=1, max_size=2)),
                    "refresh_token": st.lists(WORD, max_size=2),
                    "expires_in": st.one_of(
                        st.none(), WORD, st.builds(dict, path=WORD, unit=st.sampled_from(["s", "ms"]))
                    ),
                    "expires_at": st.builds(dict, path=WORD, format=st.sampled_from(["unix", "unix_ms", "iso8601"])),
                    "default_ttl": DURATION,
                    "body": st.sampled_from(["json", "form", "text"]),
                },
            ),
        )
    if kind == "oauth2":
        auth["grant_type"] = draw(st.sampled_from(["authorization_code", "client_credentials", "password"]))
        auth["authorization_url"] = draw(templates(names, url=True))
        auth["client_id"] = draw(templates(names)) or "id"
        maybe(draw, auth, "issuer", templates(names, url=True))
        maybe(draw, auth, "revoke_url", templates(names, url=True))
        auth["authorize_params"] = template_maps(draw, names, WORD)
        maybe(draw, auth, "scopes", st.lists(WORD, max_size=3))
        maybe(draw, auth, "scope_separator", st.sampled_from([" ", ",", "+"]))
        maybe(draw, auth, "client_secret", TEXT.filter(bool))
        maybe(draw, auth, "client_auth", st.sampled_from(["header", "body", "both"]))
        maybe(draw, auth, "pkce", st.booleans())
        maybe(draw, auth, "refresh_token", st.booleans())
        maybe(draw, auth, "callback", st.builds(dict, capture=st.lists(WORD, max_size=2)))
    if kind == "custom_token":
        maybe(draw, auth, "ttl", DURATION)
    if kind != "none":
        hook = st.from_regex(r"[a-z_]{1,5}(\.[a-z_]{1,5})?:[a-z_]{1,5}", fullmatch=True)
        maybe(draw, auth, "hooks", st.fixed_dictionaries({}, optional={"test": hook, "get_token_data": hook}))
    return auth


@st.composite
def specs(draw: st.DrawFn) -> Integration:
    params = draw(parameters())
    names = [p["name"] for p in params if p.get("format") != "url"]
    auth = draw(auth_blocks(names))
    placed = "{base64(username:password)}" if auth["type"] == "basic" else "{token}"
    in_ = draw(st.sampled_from(["header", "query"]))
    data: dict[str, typing.Any] = {
        "key": draw(st.from_regex(r"[A-Za-z0-9]{1,64}", fullmatch=True)),
        "name": draw(TEXT.filter(lambda name: 0 < len(name) <= 200)),
        "parameters": params,
        "auth": auth,
        "token": {
            "in": in_,
            "name": draw(HEADER if in_ == "header" else WORD),
            "template": draw(SENDABLE) + placed,
        },
        "request": {
            "base_url": draw(templates(names, url=True)),
            "headers": template_maps(draw, names, HEADER),
            "query": template_maps(draw, names, WORD),
        },
        "refresh": {
            "window": draw(DURATION),
            "min_ttl": draw(DURATION),
            "on_status": draw(st.lists(st.integers(400, 599))),
        },
    }
    maybe(draw, data, "description", TEXT)
    if draw(st.booleans()):
        data["refresh"]["request"] = {
            "url": draw(templates(names, url=True)),
            "method": draw(st.sampled_from(["GET", "POST"])),
            "body": draw(st.sampled_from(["form", "json", "query"])),
            "params": {"refresh_token": "{refresh_token}"},
        }
    maybe(
        draw,
        data,
        "test",
        st.builds(
            dict,
            method=st.sampled_from(["GET", "head", "POST"]),
            path=st.sampled_from(["/", "/me", "/{credentials.user_id}"]),
            expect_status=st.one_of(st.integers(100, 599), st.lists(st.integers(100, 599), min_size=1, max_size=2)),
        ),
    )
    return validate_spec(data)


@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(specs())
def test_generated_specs_round_trip(spec: Integration) -> None:
    """Any valid spec, whatever its text, dumps to YAML that loads back equal (client secret masked)."""
    round_trip(spec)


@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(specs())
def test_generated_specs_round_trip_through_plain_data(spec: Integration) -> None:
    """``spec_to_dict`` output validates back to an equal model, as the JSON API relies on."""
    assert validate_spec(spec_to_dict(spec)) == masked(spec)


# Line numbers and YAML mistakes


def test_errors_carry_the_line_of_the_field() -> None:
    """Each error points at the line of its field, sorted by line."""
    text = "key: acme\nname: Acme\nparameters:\n  - name: a\n  - name: 9b\nauth:\n  type: oauth2\n  pkce: maybe\n"
    with pytest.raises(SpecError, match="5 problems in the integration spec") as info:
        load_spec(text)
    assert [(item.path, item.line) for item in info.value.errors] == [
        ("parameters.1.name", 5),
        ("auth.authorization_url", 6),
        ("auth.token_url", 6),
        ("auth.client_id", 6),
        ("auth.pkce", 8),
    ]


def test_a_missing_field_points_at_its_block() -> None:
    """A required field that is absent is reported at the line of the block that lacks it."""
    with pytest.raises(SpecError, match=re.escape("parameters.0.name: is required")) as info:
        load_spec("key: acme\nname: Acme\nparameters:\n  - label: Region\n    required: true\n")
    assert info.value.errors == (ErrorItem("parameters.0.name", "is required", 4),)


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("key: [acme\nname: x\n", 2, "expected ',' or ']'"),
        ("key: acme\n  name: x\n", 2, "mapping values are not allowed here"),
        ("key: acme\nname: 'x\n", 3, "found unexpected end of stream"),
        ("key: !!python/object:os.system x\n", 1, "could not determine a constructor"),
    ],
)
def test_yaml_mistakes_are_spec_errors_with_a_line(text: str, line: int, fragment: str) -> None:
    """Broken YAML (and unsafe tags) is a SpecError with the line, never a yaml exception."""
    with pytest.raises(SpecError, match=re.escape(fragment)) as info:
        load_spec(text, source="bad.yaml")
    [item] = info.value.errors
    assert item.line == line and item.message.startswith("not valid YAML: ") and fragment in item.message
    assert str(info.value).startswith("bad.yaml: 1 problem")


@pytest.mark.parametrize("text", ["", "# only a comment\n", "---\n", "null\n"])
def test_an_empty_file_is_an_error(text: str) -> None:
    """A file without a document says so."""
    with pytest.raises(SpecError, match="the file holds no integration") as info:
        load_specs(text)
    assert info.value.errors == (ErrorItem("", "the file holds no integration"),)


def test_a_document_that_is_not_a_mapping_is_an_error() -> None:
    """A list or a scalar is not a spec."""
    with pytest.raises(SpecError, match="must be a mapping"):
        load_spec("- key: acme\n")


def test_keys_given_twice_are_errors() -> None:
    """YAML would keep the last of two equal keys silently; the loader reports each repetition."""
    text = "key: acme\nname: A\nauth:\n  type: none\nkey: other\nauth:\n  type: basic\n"
    with pytest.raises(SpecError, match="key: is given twice") as info:
        load_spec(text)
    assert info.value.errors == (ErrorItem("key", "is given twice", 5), ErrorItem("auth", "is given twice", 6))


def test_merge_keys_are_not_duplicates() -> None:
    """YAML merge keys (``<<``) may repeat and anchors work as usual."""
    text = (
        "key: acme\nname: A\nrequest:\n  headers: &h {Accept: application/json}\n"
        "  query:\n    <<: {a: '1'}\n    b: '2'\n"
    )
    assert load_spec(text).request.query == {"a": "1", "b": "2"}


# Several documents


def test_load_specs_reads_every_document() -> None:
    """A YAML stream with ``---`` separators gives one integration per document; empty ones are skipped."""
    specs = load_specs("key: a\nname: A\n---\n---\nkey: b\nname: B\n")
    assert [spec.key for spec in specs] == ["a", "b"]


def test_load_specs_reports_the_problems_of_every_document_at_once() -> None:
    """Problems in several documents come in one SpecError, each with its line in the file."""
    text = "key: a-1\nname: A\n---\nkey: ok\nname: fine\n---\nkey: b\nname: ''\nkey: c\n"
    with pytest.raises(SpecError, match=re.escape("many.yaml: 3 problems in the integration spec")) as info:
        load_specs(text, source="many.yaml")
    assert info.value.errors == (
        ErrorItem("key", "must contain only letters and digits (1 to 64 of them)", 1),
        ErrorItem("name", "cannot be empty", 8),
        ErrorItem("key", "is given twice", 9),
    )


def test_load_spec_wants_exactly_one_document() -> None:
    """``load_spec`` refuses a stream of two integrations."""
    with pytest.raises(SpecError, match="expected one integration, found 2"):
        load_spec("key: a\nname: A\n---\nkey: b\nname: B\n")


def test_json_is_accepted() -> None:
    """JSON is YAML, so a JSON spec loads too."""
    assert load_spec('{"key": "a", "name": "A", "auth": {"type": "api_token"}}').auth.type == "api_token"


def test_dump_is_safe_yaml() -> None:
    """The dump is plain YAML: no Python tags, readable by any safe loader."""
    assert yaml.safe_load(dump_spec(load_spec(EVERY_BLOCK)))["key"] == "acme"
    assert "!!python" not in dump_spec(load_spec(EVERY_BLOCK))


def alias_bomb() -> str:
    """A ~400-byte spec whose aliases expand to 9**8 (43 million) values when walked ("billion laughs")."""
    lines = ['a0: &a0 ["x","x","x","x","x","x","x","x","x"]']
    lines += [f"a{i}: &a{i} [{','.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 8)]
    return "\n".join(["key: bomb", "name: Bomb", "description:", *(f"  {line}" for line in lines)]) + "\n"


def test_aliases_are_refused_before_anything_is_expanded() -> None:
    """An alias bomb is refused at its first alias, with the line (it once took seconds to walk)."""
    bomb = alias_bomb()
    assert len(bomb) < 500
    with pytest.raises(SpecError, match=r"aliases \(\*name\) are not allowed in a spec") as caught:
        load_specs(bomb)
    assert caught.value.errors[0].line == 5


@pytest.mark.parametrize(
    "text",
    [
        "key: a\nname: A\ndescription: &d text\nrequest:\n  headers:\n    X-A: *d\n",
        "base: &b {type: none}\nkey: a\nname: A\nauth:\n  <<: *b\n",
    ],
)
def test_any_alias_or_merge_key_is_refused(text: str) -> None:
    """A plain alias and a merge key (``<<: *x``) are refused alike: a spec is written out in full."""
    with pytest.raises(SpecError, match="aliases"):
        load_specs(text)


def test_deep_nesting_and_huge_node_counts_are_refused() -> None:
    """Nesting past MAX_DEPTH and more than MAX_NODES values are refused with a clear message."""
    with pytest.raises(SpecError, match=f"nested more than {MAX_DEPTH} levels"):
        load_specs("key: a\nname: A\ndescription: " + "[" * 200 + "]" * 200 + "\n")
    many = "key: a\nname: A\nextra:\n" + "".join(f"  k{i}: [1, 2]\n" for i in range(MAX_NODES // 3 + 1))
    with pytest.raises(SpecError, match=f"more than {MAX_NODES} values"):
        load_specs(many)
