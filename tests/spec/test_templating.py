"""Tests of template parsing and of the safe rendering of URLs, headers and text."""

from __future__ import annotations

import base64
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import parse_qsl, unquote, urlsplit

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from authbridge.errors import TemplateError, UnsafeValueError
from authbridge.spec.templating import (
    Template,
    check_url_template,
    references_of,
    render_header,
    render_path,
    render_text,
    render_url,
    unix_time_template,
)

SECRET = "s3cr3t-Tok3n-9f8e7d"
MOMENT = datetime(2026, 11, 27, 19, 7, 23, 654321, tzinfo=UTC)
VALUES: dict[str, str | None] = {
    "serverName": "eu1",
    "client_id": "abc",
    "client_secret": "xyz",
    "token": "tok",
    "credentials.instance_url": "https://na1.salesforce.com",
    "empty": "",
    "none": None,
}
WHOLE = {"credentials.instance_url", "baseUrl"}
# Encodable text rich in controls, URL delimiters, '%', '\\' and non-ASCII (lone surrogates: see ERROR_CASES).
NASTY = st.text(
    alphabet=st.one_of(st.characters(codec="utf-8"), st.sampled_from(list("/@:#?%\\.&=+ \r\n\0\t[]é€𝄞"))),
    min_size=1,
)


def fixed_clock() -> datetime:
    return MOMENT


# Parsing


def test_literal_text_has_no_references() -> None:
    """A template without placeholders parses to no references and no functions."""
    template = Template.parse("application/json")
    assert template.references == frozenset()
    assert template.functions == frozenset()
    assert render_text("application/json", {}, field="f") == "application/json"


def test_doubled_braces_are_literal_braces() -> None:
    """`{{` and `}}` render as single braces, also around a placeholder."""
    assert render_text('{{"a": {{{token}}}}}', VALUES, field="f") == '{"a": {tok}}'
    assert Template.parse("{{token}}").references == frozenset()


@pytest.mark.parametrize(
    ("source", "fragment"),
    [
        ("a}b", "single '}' at position 1"),
        ("a{b", "'{' at position 1 starts no placeholder"),
        ("{a{b}", "'{' at position 0 starts no placeholder"),
        ("{base64('abc)}", "starts no placeholder"),
        ("x{}", "placeholder at position 1 is empty"),
        ("{ token }", "contains whitespace"),
        ('{ "json": 1 }', "contains whitespace"),
        ("{to ken}", "contains whitespace"),
        ("{foo.bar}", "'foo.bar' is not a reference"),
        ("{credentials}", "'credentials' is not a reference"),
        ("{credentials.}", "neither a reference nor a function call"),
        ("{1abc}", "neither a reference nor a function call"),
        ("{a-b}", "neither a reference nor a function call"),
        ("{now(x)}", "now() takes a format (iso8601, unix, unix_ms or a quoted strftime format"),
        ("{uuid(x)}", "uuid() takes no arguments"),
        ("{base64()}", "base64() needs at least one argument"),
        ("{base64(a1:2)}", "unexpected '2' in base64()"),
        ('{base64(a:"b")}', "unexpected '\"' in base64()"),
        ("{base64(a.b)}", "'a.b' is not a reference"),
        ("{base64(a)(b)}", "unexpected ')' in base64()"),
    ],
)
def test_bad_syntax_is_a_template_error(source: str, fragment: str) -> None:
    """Malformed placeholders raise TemplateError saying what is wrong."""
    with pytest.raises(TemplateError, match=re.escape(fragment)) as info:
        Template.parse(source)
    assert fragment in str(info.value)
    assert type(info.value) is TemplateError


def test_unknown_function_is_named_with_the_known_ones() -> None:
    """An unknown function raises TemplateError naming it and listing base64, now and uuid."""
    with pytest.raises(TemplateError, match=r"unknown function 'eval'; known functions: base64, now, uuid"):
        Template.parse("{eval(token)}")


def test_references_and_functions_include_function_arguments() -> None:
    """References inside function arguments are listed, and so are the functions used."""
    template = Template.parse("Basic {base64(client_id:client_secret)} {credentials.a.b} {now()} {uuid()}")
    assert template.references == {"client_id", "client_secret", "credentials.a.b"}
    assert template.functions == {"base64", "now", "uuid"}


def test_template_is_immutable_hashable_and_cached() -> None:
    """Parsing the same text twice gives the same hashable object, which cannot be changed."""
    first = Template.parse("Bearer {token}")
    assert Template.parse("Bearer {token}") is first
    assert first == Template.parse("Bearer {token}")
    assert {first: 1}[Template.parse("Bearer {token}")] == 1
    with pytest.raises(AttributeError, match="cannot assign to field 'source'"):
        first.source = "x"  # type: ignore[misc]


def test_references_of_unions_alternatives() -> None:
    """references_of returns every name used by any alternative."""
    assert references_of("{a}/{b}") == {"a", "b"}
    assert references_of(["{a}", "{b}-{credentials.c}", "plain"]) == {"a", "b", "credentials.c"}


def test_parse_error_in_a_field_is_prefixed_with_the_field() -> None:
    """A render of a malformed template raises TemplateError starting with the field path."""
    with pytest.raises(TemplateError, match=r"^token\.template: a single '\}'"):
        render_text(["{token}", "oops}"], VALUES, field="token.template")


# Functions


def test_base64_encodes_the_concatenated_arguments() -> None:
    """base64(client_id:client_secret) is the standard base64 of 'client_id:client_secret'."""
    result = render_header("Basic {base64(client_id:client_secret)}", VALUES, field="f")
    assert result == "Basic " + base64.b64encode(b"abc:xyz").decode()


def test_base64_takes_quoted_literals_and_punctuation_as_utf8() -> None:
    """Quoted literals (spaces and braces included) and punctuation join the references, as UTF-8."""
    values = {"user": "zoë", "password": "p"}
    result = render_text("{base64(user' }{ ':password'-'/)}", values, field="f")
    assert base64.b64decode(result).decode() == "zoë }{ :p-/"
    assert result.endswith("=") or len(result) % 4 == 0


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{now()}", "2026-11-27T19:07:23Z"),
        ("{now(iso8601)}", "2026-11-27T19:07:23Z"),
        ("{now(unix)}", str(int(MOMENT.timestamp()))),
        ("{now(unix_ms)}", str(int(MOMENT.timestamp()) * 1000 + 654)),
    ],
)
def test_now_formats_the_injected_clock(source: str, expected: str) -> None:
    """now() renders the clock's time as ISO 8601 UTC seconds, unix seconds or unix milliseconds."""
    assert render_text(source, {}, field="f", clock=fixed_clock) == expected


def test_now_converts_other_timezones_to_utc() -> None:
    """now(iso8601) renders an aware time in another zone as the same instant in UTC."""
    zoned = MOMENT.astimezone(timezone(timedelta(hours=-5)))
    assert render_text("{now()}", {}, field="f", clock=lambda: zoned) == "2026-11-27T19:07:23Z"


def test_now_reads_the_clock_once_per_render() -> None:
    """Several now() in one template show the same instant, reading the clock once."""
    calls: list[int] = []

    def clock() -> datetime:
        calls.append(1)
        return MOMENT + timedelta(seconds=len(calls))

    assert (
        render_text("{now(unix)}-{now(unix)}", {}, field="f", clock=clock).split("-")
        == [str(int(MOMENT.timestamp()) + 1)] * 2
    )
    assert len(calls) == 1


def test_now_refuses_a_naive_clock() -> None:
    """A clock returning a naive datetime is a programming error (ValueError)."""
    with pytest.raises(ValueError, match="naive"):
        render_text("{now()}", {}, field="f", clock=lambda: datetime(2026, 1, 1))  # noqa: DTZ001


def test_now_defaults_to_the_system_clock() -> None:
    """Without a clock, now(unix) is the current time."""
    before = int(datetime.now(UTC).timestamp())
    assert before <= int(render_text("{now(unix)}", {}, field="f")) <= before + 5


def test_uuid_renders_a_fresh_uuid4() -> None:
    """uuid() renders a random version-4 UUID, different each time."""
    first, second = render_text("{uuid()} {uuid()}", {}, field="f").split()
    assert uuid.UUID(first).version == 4
    assert first != second


# Alternatives and missing values


def test_first_alternative_with_every_reference_set_wins() -> None:
    """The first alternative whose references are all set (not absent, None or empty) is rendered."""
    alternatives = ["{missing}", "{empty}-{token}", "{none}", "{token}-{serverName}", "{token}"]
    assert render_text(alternatives, VALUES, field="f") == "tok-eu1"


def test_no_alternative_lists_the_missing_names() -> None:
    """When no alternative qualifies the error lists every missing name once, in order."""
    with pytest.raises(TemplateError, match="no alternative can be rendered; missing a, b") as info:
        render_text(["{a}-{token}", "{b}/{a}"], VALUES, field="request.base_url")
    assert str(info.value) == "request.base_url: no alternative can be rendered; missing a, b"


@pytest.mark.parametrize("name", ["missing", "empty", "none"])
def test_a_single_template_names_its_missing_reference(name: str) -> None:
    """A reference that is absent, None or empty fails with 'needs <name>, which has no value'."""
    with pytest.raises(TemplateError, match=f"needs {name}, which has no value") as info:
        render_header(f"Bearer {{{name}}}", VALUES, field="token.template")
    assert str(info.value) == f"token.template: needs {name}, which has no value"


def test_an_empty_list_of_alternatives_is_an_error() -> None:
    """An empty list of alternatives cannot be rendered."""
    with pytest.raises(TemplateError, match="no template given"):
        render_text([], VALUES, field="f")


def test_missing_reference_inside_a_function_counts() -> None:
    """A reference used only inside base64() must be set too."""
    with pytest.raises(TemplateError, match="needs password"):
        render_text("{base64(username:password)}", {"username": "u"}, field="f")


# Headers


@pytest.mark.parametrize("bad", ["\r", "\n", "\0", "\r\nX-Injected: 1", "\x01", "\x1b[31m", "\x7f"])
def test_header_refuses_line_breaks_and_nul(bad: str) -> None:
    """A header value containing CR, LF or NUL raises UnsafeValueError naming the reference only."""
    with pytest.raises(UnsafeValueError, match="contains a line break, NUL or other control character") as info:
        render_header("Bearer {token}", {"token": SECRET + bad}, field="token.template")
    assert str(info.value) == (
        "token.template: the value of token contains a line break, NUL or other control character, "
        "which cannot go in a header"
    )


def test_header_refuses_a_line_break_in_the_template_itself() -> None:
    """A literal line break in the template is refused at render too."""
    with pytest.raises(UnsafeValueError, match="header contains a line break"):
        render_header("a\nb: {token}", VALUES, field="f")


def test_header_allows_base64_of_a_value_with_a_line_break() -> None:
    """base64 output never contains a line break, so its input may."""
    rendered = render_header("Basic {base64(token)}", {"token": "a\r\nb"}, field="f")
    assert rendered == "Basic " + base64.b64encode(b"a\r\nb").decode()


def test_text_substitutes_values_unchanged() -> None:
    """render_text leaves values exactly as they are, encoding nothing."""
    values = {"a": "x/y?z=1&w#\n%"}
    assert render_text("<{a}>", values, field="f") == "<x/y?z=1&w#\n%>"


# URLs: host, port, path, query, fragment


def test_url_host_part_takes_host_characters() -> None:
    """A value in the host may be letters, digits, '-' and '.'."""
    url = render_url("https://{serverName}.acme.example/oauth2", {"serverName": "eu-1.api"}, field="f")
    assert url == "https://eu-1.api.acme.example/oauth2"


@pytest.mark.parametrize(
    "value", ["evil.com/", "evil.com#", "a@evil.com", "evil.com:80", "a b", "é", "x\\y", "a?b", "%41"]
)
def test_url_host_part_refuses_other_characters(value: str) -> None:
    """A host value with any other character raises UnsafeValueError without echoing it."""
    with pytest.raises(UnsafeValueError, match="the value of serverName is not a valid host name part") as info:
        render_url("https://{serverName}.acme.example/x", {"serverName": value}, field="auth.token_url")
    assert str(info.value) == (
        "auth.token_url: the value of serverName is not a valid host name part (letters, digits, '-' and '.' only)"
    )


def test_url_port_takes_digits_only() -> None:
    """A port value must be digits, within the port range."""
    assert render_url("https://h.example:{p}/", {"p": "8443"}, field="f") == "https://h.example:8443/"
    with pytest.raises(UnsafeValueError, match="value of p is not a port number"):
        render_url("https://h.example:{p}/", {"p": "80@evil.com"}, field="f")
    with pytest.raises(UnsafeValueError, match="invalid host or port"):
        render_url("https://h.example:{p}/", {"p": "99999"}, field="f")


def test_url_host_and_port_in_ipv6_brackets() -> None:
    """A ':' inside IPv6 brackets does not start the port."""
    assert render_url("https://[::1]:{p}/x", {"p": "81"}, field="f") == "https://[::1]:81/x"


def test_url_path_query_and_fragment_values_are_percent_encoded() -> None:
    """Path, query and fragment values are encoded with quote(safe=''), so delimiters stay data."""
    values = {"a": "x/y?#@:%é ", "b": "1&r=2#", "c": "#/?"}
    url = render_url("https://h.example/v1/{a}?q={b}#{c}", values, field="f")
    assert url == "https://h.example/v1/x%2Fy%3F%23%40%3A%25%C3%A9%20?q=1%26r%3D2%23#%23%2F%3F"


@pytest.mark.parametrize(
    "template", ["https://h.example/a/{v}/b", "https://h.example/a/.{v}", "https://h.example/{v}{v}"]
)
@pytest.mark.parametrize("value", [".", ".."])
def test_url_dot_segment_values_in_a_path_are_refused(template: str, value: str) -> None:
    """A path value of '.' or '..' is refused: encoded as %2E%2E, yarl and servers decode and drop it anyway."""
    with pytest.raises(UnsafeValueError, match=rf"the value of v is '{re.escape(value)}', which cannot be a URL path"):
        render_url(template, {"v": value}, field="f")


def test_url_other_dot_values_are_encoded() -> None:
    """Three dots are no dot segment: encoded, they stay one segment."""
    url = render_url("https://h.example/a/{v}/b", {"v": "..."}, field="f")
    assert url == "https://h.example/a/%2E%2E%2E/b"
    assert httpx.URL(url).raw_path == b"/a/%2E%2E%2E/b"


@pytest.mark.parametrize(
    ("template", "values"),
    [
        ("{base}/x", {"base": "https://h.example/a/%2e%2E"}),
        ("{base}/x", {"base": "https://h.example/a/%2E"}),
        ("{base}/x", {"base": "https://h.example/a/../b"}),
    ],
)
def test_a_rendered_path_with_a_dot_segment_is_refused(template: str, values: dict[str, str]) -> None:
    """A whole-URL value holding a dot segment, encoded or not, is refused too."""
    with pytest.raises(UnsafeValueError, match=re.escape("the rendered URL path has a '.' or '..' segment")):
        render_url(template, values, field="f", whole_url_names={"base"})


def test_url_function_results_are_encoded_like_values() -> None:
    """base64 output in a query has '+', '/' and '=' percent-encoded."""
    url = render_url("https://h.example/x?auth={base64(a)}", {"a": "\xfb\xff\xbe"}, field="f")
    raw = base64.b64encode("\xfb\xff\xbe".encode()).decode()
    assert "+" in raw or "/" in raw or "=" in raw
    assert url == "https://h.example/x?auth=" + raw.replace("+", "%2B").replace("/", "%2F").replace("=", "%3D")
    assert dict(parse_qsl(urlsplit(url).query))["auth"] == raw


def test_url_query_without_path() -> None:
    """A '?' right after the host starts the query."""
    assert render_url("https://h.example?q={a}", {"a": "a b"}, field="f") == "https://h.example?q=a%20b"


# URLs: scheme, user info, structure


@pytest.mark.parametrize(
    ("source", "where"),
    [
        ("http{s}://h.example/", "scheme"),
        ("https://{s}@h.example/", "user info"),
        ("https://u:{s}@h/", "user info"),
    ],
)
def test_url_refuses_placeholders_in_scheme_and_user_info(source: str, where: str) -> None:
    """A placeholder in the scheme or user info is refused at render and reported by the check."""
    with pytest.raises(UnsafeValueError, match=f"s is in the URL {where}, where no value may go") as info:
        render_url(source, {"s": SECRET}, field="f")
    assert str(info.value) == f"f: s is in the URL {where}, where no value may go"
    assert check_url_template(source, field="f") == [f"f: s is in the URL {where}, where no value may go"]


@pytest.mark.parametrize("source", ["/relative/{a}", "h.example/{a}", "https:/h.example/{a}", "mailto:{a}"])
def test_url_that_is_not_absolute_is_a_template_error(source: str) -> None:
    """A template without a literal scheme:// and without a leading whole URL is not a URL."""
    with pytest.raises(TemplateError, match="not an absolute URL") as info:
        render_url(source, {"a": "x"}, field="f")
    assert type(info.value) is TemplateError
    assert check_url_template(source, field="f") == ["f: not an absolute URL: start it with https://"]


def test_url_scheme_must_be_http_or_https() -> None:
    """A literal scheme other than http or https is refused."""
    with pytest.raises(TemplateError, match="must be http or https, not 'ftp'"):
        render_url("ftp://h.example/{a}", {"a": "x"}, field="f")
    assert check_url_template("ftp://h.example/{a}", field="f") == [
        "f: the URL scheme must be http or https, not 'ftp'"
    ]
    assert render_url("HTTP://h.example/{a}", {"a": "x"}, field="f") == "HTTP://h.example/x"


def test_url_without_a_host_is_refused() -> None:
    """A literal URL with an empty authority is refused statically."""
    assert check_url_template("https:///x", field="f") == ["f: the URL has no host"]
    with pytest.raises(TemplateError, match="no host"):
        render_url("https:///x", {}, field="f")


# URLs: whole-URL placeholders


def test_whole_url_from_a_declared_name() -> None:
    """A leading placeholder declared as a URL supplies scheme, host and a base path."""
    values = {"baseUrl": "https://api.example.com:8443/base", "id": "a/b"}
    url = render_url("{baseUrl}/items/{id}", values, field="f", whole_url_names=WHOLE)
    assert url == "https://api.example.com:8443/base/items/a%2Fb"


def test_whole_url_trailing_slash_is_dropped_before_a_slash() -> None:
    """A trailing '/' of the whole URL is dropped when the template continues with '/'."""
    render = render_url
    assert render("{baseUrl}/x", {"baseUrl": "https://h.example/"}, field="f", whole_url_names=WHOLE) == (
        "https://h.example/x"
    )
    assert render("{baseUrl}?q=1", {"baseUrl": "https://h.example/"}, field="f", whole_url_names=WHOLE) == (
        "https://h.example/?q=1"
    )
    assert render("{baseUrl}", {"baseUrl": "https://h.example/"}, field="f", whole_url_names=WHOLE) == (
        "https://h.example/"
    )


def test_whole_url_for_an_undeclared_name_is_refused() -> None:
    """Only names in whole_url_names may supply a whole URL; functions never may."""
    message = "f: serverName cannot supply a whole URL; declare it with format: url"
    with pytest.raises(UnsafeValueError, match=re.escape(message)) as info:
        render_url("{serverName}/x", VALUES, field="f", whole_url_names=WHOLE)
    assert str(info.value) == message
    assert check_url_template("{serverName}/x", field="f", whole_url_names=WHOLE) == [message]
    assert check_url_template("{uuid()}/x", field="f", whole_url_names=WHOLE) == [
        "f: uuid() cannot supply a whole URL; declare it with format: url"
    ]


def test_whole_url_wildcard_admits_credential_fields() -> None:
    """'credentials.*' in whole_url_names admits every credential field, and nothing else."""
    names = {"credentials.*"}
    url = render_url("{credentials.instance_url}/services/data", VALUES, field="f", whole_url_names=names)
    assert url == "https://na1.salesforce.com/services/data"
    assert check_url_template("{credentials.other}/x", field="f", whole_url_names=names) == []
    assert check_url_template("{serverName}/x", field="f", whole_url_names=names) != []


def test_whole_url_must_be_followed_by_a_delimiter() -> None:
    """Text glued to a whole URL could change its host, so it must start with '/', '?' or '#'."""
    for source in ["{baseUrl}x", "{baseUrl}.evil.com/", "{baseUrl}{id}", "{baseUrl}:8080/"]:
        message = "f: baseUrl supplies a whole URL: follow it with '/', '?' or '#'"
        assert check_url_template(source, field="f", whole_url_names=WHOLE) == [message]
        with pytest.raises(TemplateError, match="follow it with"):
            render_url(source, {"baseUrl": "https://h.example", "id": "1"}, field="f", whole_url_names=WHOLE)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("http://h.example", "must be an https URL"),
        ("ftp://h.example", "must be an https URL"),
        ("javascript://h.example", "must be an https URL"),
        ("h.example/path", "must be an absolute URL with a valid host name"),
        ("https://", "must be an absolute URL with a valid host name"),
        ("https:h.example", "must be an absolute URL with a valid host name"),
        ("https://user:pw@h.example", "must not contain user info"),
        ("https://h.example@evil.com", "must not contain user info"),
        ("https://h.example/?a=1", "must not contain a query or a fragment"),
        ("https://h.example/#top", "must not contain a query or a fragment"),
        ("https://h.example/ x", "must be a plain ASCII URL without spaces"),
        ("https://h.example\\@evil.com", "must be a plain ASCII URL without spaces"),
        ("https://h.example/\r\n", "must be a plain ASCII URL without spaces"),
        ("https://hé.example", "must be a plain ASCII URL without spaces"),
        ("https://h.example:99999", "is not a valid URL"),
        ("https://[::1", "is not a valid URL"),
        ("https://h_x.example", "must be an absolute URL with a valid host name"),
    ],
)
def test_whole_url_value_rules(value: str, reason: str) -> None:
    """A whole-URL value must be an https URL with a host and no user info, query or fragment."""
    with pytest.raises(UnsafeValueError, match=re.escape(f"f: the value of baseUrl {reason}")) as info:
        render_url("{baseUrl}/x", {"baseUrl": value}, field="f", whole_url_names=WHOLE)
    assert str(info.value).startswith(f"f: the value of baseUrl {reason}")


def test_whole_url_http_only_where_allowed() -> None:
    """An http whole URL is accepted only when allow_http(host) returns True."""
    seen: list[str] = []

    def allow_http(host: str) -> bool:
        seen.append(host)
        return host == "localhost"

    values = {"baseUrl": "http://LocalHost:8080"}
    url = render_url("{baseUrl}/x", values, field="f", whole_url_names=WHOLE, allow_http=allow_http)
    assert url == "http://LocalHost:8080/x"
    assert seen == ["localhost"]
    with pytest.raises(UnsafeValueError, match="must be an https URL"):
        render_url(
            "{baseUrl}/x",
            {"baseUrl": "http://h.example"},
            field="f",
            whole_url_names=WHOLE,
            allow_http=allow_http,
        )


def test_check_url_template_accepts_good_templates() -> None:
    """Well-formed URL templates produce no messages, alternatives included."""
    good = [
        "https://{serverName}.acme.example/oauth2/v1/token",
        "http://localhost:{port}/x?{a}={b}#{c}",
        ["{baseUrl}/services/data", "https://login.example.com/{path}"],
        "{credentials.instance_url}",
    ]
    for source in good:
        assert check_url_template(source, field="f", whole_url_names=WHOLE) == []


def test_check_url_template_reports_every_alternative() -> None:
    """Every alternative is checked, and each distinct problem is reported once."""
    messages = check_url_template(["http{a}://x", "{b}/x", "{b}/y"], field="auth.url")
    assert messages == [
        "auth.url: a is in the URL scheme, where no value may go",
        "auth.url: b cannot supply a whole URL; declare it with format: url",
    ]


def test_check_url_template_raises_on_syntax_errors() -> None:
    """A template that cannot be parsed raises TemplateError rather than returning a message."""
    with pytest.raises(TemplateError, match=r"^f: "):
        check_url_template("https://h.example/{a", field="f")


# Messages never contain values


ERROR_CASES: list[tuple[Callable[[str], object], str]] = [
    (lambda v: render_header("Bearer {token}", {"token": v + "\n"}, field="f"), "line break"),
    (lambda v: render_url("https://{h}.example/", {"h": v + "/"}, field="f"), "host name part"),
    (lambda v: render_url("https://h:{p}/", {"p": v}, field="f"), "port"),
    (lambda v: render_url("http{p}://h/", {"p": v}, field="f"), "scheme"),
    (lambda v: render_url("https://{p}@h/", {"p": v}, field="f"), "user info"),
    (lambda v: render_url("{p}/x", {"p": v}, field="f"), "whole URL"),
    (lambda v: render_url("{u}/x", {"u": f"http://{v}.example"}, field="f", whole_url_names={"u"}), "https"),
    (
        lambda v: render_url("{u}/x", {"u": f"https://{v}@h.example"}, field="f", whole_url_names={"u"}),
        "user",
    ),
    (lambda v: render_url("{u}/x", {"u": f"https://h/?{v}"}, field="f", whole_url_names={"u"}), "query"),
    (lambda v: render_url("{u}/x", {"u": f"https://h/ {v}"}, field="f", whole_url_names={"u"}), "spaces"),
    (lambda v: render_url("{u}/x", {"u": f"https://{v}:x"}, field="f", whole_url_names={"u"}), "valid URL"),
    (lambda v: render_url("https://h/{p}", {"p": v + "\ud800"}, field="f"), "not valid text"),
    (lambda v: render_text("{base64(p)}", {"p": v + "\ud800"}, field="f"), "not valid text"),
]


@pytest.mark.parametrize(("render", "fragment"), ERROR_CASES)
def test_error_messages_never_contain_the_value(render: Callable[[str], object], fragment: str) -> None:
    """Every rendering error names the reference but never contains the substituted value."""
    with pytest.raises(TemplateError, match=re.escape(fragment)) as info:
        render(SECRET)
    assert fragment in str(info.value)
    assert SECRET not in str(info.value)
    assert SECRET not in repr(info.value)


# Properties


@given(a=NASTY, b=NASTY, c=NASTY)
def test_property_values_never_change_url_structure(a: str, b: str, c: str) -> None:
    """Arbitrary path, query and fragment values keep scheme, host, port, segment count and query keys.

    A path value of ``.`` or ``..`` is the one exception: it is refused (it would climb the path).
    """
    if a in {".", ".."}:
        with pytest.raises(UnsafeValueError, match="cannot be a URL path segment"):
            render_url("https://api.example.com/v1/{a}/items", {"a": a}, field="f")
        return
    url = render_url("https://api.example.com/v1/{a}/items?q={b}&r=x#{c}", {"a": a, "b": b, "c": c}, field="f")
    parts = urlsplit(url)
    assert (parts.scheme, parts.hostname, parts.port, parts.username) == (
        "https",
        "api.example.com",
        None,
        None,
    )
    assert len(parts.path.split("/")) == 4
    assert [key for key, _ in parse_qsl(parts.query, keep_blank_values=True)] == ["q", "r"]
    assert (
        unquote(parts.path.split("/")[2]),
        dict(parse_qsl(parts.query))["q"],
        unquote(parts.fragment),
    ) == (
        a,
        b,
        c,
    )
    parsed = httpx.URL(url)
    assert (parsed.scheme, parsed.host, parsed.port, parsed.userinfo) == (
        "https",
        "api.example.com",
        None,
        b"",
    )
    assert len(parsed.raw_path.split(b"?")[0].split(b"/")) == 4
    assert set(parsed.params.keys()) == {"q", "r"}


@given(server=st.one_of(NASTY, st.from_regex(r"[A-Za-z0-9.-]{1,20}", fullmatch=True)))
def test_property_host_values_stay_inside_the_host(server: str) -> None:
    """An arbitrary host value is refused or gives host *.example.com, path /x, no user info and no port."""
    try:
        url = render_url("https://{server}.example.com/x", {"server": server}, field="f")
    except UnsafeValueError:
        return
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.hostname.endswith(".example.com")
    assert (parts.username, parts.password, parts.port, parts.path) == (None, None, None, "/x")
    parsed = httpx.URL(url)
    assert parsed.host.endswith(".example.com")
    assert (parsed.userinfo, parsed.port, parsed.path) == (b"", None, "/x")


SHAPES: dict[str, Callable[[str, str], str]] = {
    "{a}": lambda a, b: a,
    "Bearer {a}": lambda a, b: "Bearer " + a,
    "{a}:{b}": lambda a, b: a + ":" + b,
    "{a}{b}": lambda a, b: a + b,
    "Basic {base64(a:b)}": lambda a, b: "Basic " + base64.b64encode(f"{a}:{b}".encode()).decode(),
}


@given(prefix=st.text(), suffix=st.text(), a=NASTY, b=NASTY, shape=st.sampled_from(sorted(SHAPES)))
def test_property_headers_never_carry_line_breaks(prefix: str, suffix: str, a: str, b: str, shape: str) -> None:
    """Any header template with arbitrary values is refused or renders without CR, LF or NUL."""
    escape = str.maketrans({"{": "{{", "}": "}}"})
    source = prefix.translate(escape) + shape + suffix.translate(escape)
    try:
        result = render_header(source, {"a": a, "b": b}, field="f")
    except UnsafeValueError:
        return
    assert not {"\r", "\n", "\0"} & set(result)
    assert result == prefix + SHAPES[shape](a, b) + suffix


def test_header_refuses_non_ascii_values() -> None:
    """A non-ASCII value cannot go in a header: a clear error naming the reference, not a crash later."""
    with pytest.raises(UnsafeValueError, match="tenant is not ASCII") as info:
        render_header("X-{tenant}", {"tenant": "José-SECRET"}, field="request.headers.X-Tenant")
    assert "José" not in str(info.value)


def test_header_keeps_a_tab() -> None:
    """HTAB is allowed in a header value (RFC 9110 field-value); the other controls are not."""
    assert render_header("a\t{v}", {"v": "b\tc"}, field="request.headers.X") == "a\tb\tc"


def test_render_path_encodes_each_value_as_one_segment_part() -> None:
    """``/``, ``?`` and ``#`` in values are encoded; literal text stays as written."""
    assert render_path("/items/{id}?x=1", {"id": "a/b?c#d"}, field="test.path") == "/items/a%2Fb%3Fc%23d?x=1"


@pytest.mark.parametrize(("template", "values"), [("/a/{v}", {"v": ".."}), ("/a/{v}/b", {"v": "."})])
def test_render_path_refuses_dot_segment_values(template: str, values: dict[str, str]) -> None:
    """A value of '.' or '..' is refused, naming the reference."""
    with pytest.raises(UnsafeValueError, match="the value of v is"):
        render_path(template, values, field="test.path")


def test_render_path_refuses_a_literal_dot_segment() -> None:
    """A dot segment in the template itself is refused at render too."""
    with pytest.raises(UnsafeValueError, match=re.escape("test.path: the path has a '.' or '..' segment")):
        render_path("/a/%2e%2E/{v}", {"v": "x"}, field="test.path")


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{now(unix,+5m)}", str(int(MOMENT.timestamp()) + 300)),
        ("{now(unix, +5m)}", str(int(MOMENT.timestamp()) + 300)),
        ("{now(unix_ms,-1s)}", str(int(MOMENT.timestamp()) * 1000 + 654 - 1000)),
        ("{now(+1h30m)}", "2026-11-27T20:37:23Z"),
        ("{now(iso8601,-1d)}", "2026-11-26T19:07:23Z"),
        ("{now('%Y-%m-%d')}", "2026-11-27"),
        ("{now('%a, %d %b %Y %H:%M:%S GMT', +90s)}", "Fri, 27 Nov 2026 19:08:53 GMT"),
        ("{now('%Y%m%dT%H%M%S.%fZ')}", "20261127T190723.654321Z"),
        ("{now('100%%')}", "100%"),
        ("at {now(unix,+1m)} or {now(unix)}", f"at {int(MOMENT.timestamp()) + 60} or {int(MOMENT.timestamp())}"),
    ],
)
def test_now_takes_custom_formats_and_offsets(source: str, expected: str) -> None:
    """now(format, offset): a quoted strftime format and a signed duration, in UTC, the clock read once."""
    assert render_text(source, {}, field="f", clock=fixed_clock) == expected


@pytest.mark.parametrize(
    ("source", "fragment"),
    [
        ("{now(unix,)}", "and/or an offset such as +5m"),
        ("{now(,+5m)}", "and/or an offset such as +5m"),
        ("{now(unix,5m)}", "and/or an offset such as +5m"),
        ("{now(5m)}", "and/or an offset such as +5m"),
        ("{now('%Y'x)}", "and/or an offset such as +5m"),
        ("{now(unix,+5m,+1m)}", "is not a duration"),
        ("{now(unix,+5x)}", "the offset '+5x' is not a duration"),
        ("{now(+367d)}", "is more than 366 days"),
        ("{now('')}", "must be 1 to 100 characters"),
        ("{now('" + "%Y" * 51 + "')}", "must be 1 to 100 characters"),
        ("{now('%s')}", "%s is not a supported now() format directive"),
        ("{now('%c')}", "%c is not a supported now() format directive"),
        ("{now('%-d')}", "%- is not a supported now() format directive"),
        ("{now('%')}", "% is not a supported now() format directive"),
    ],
)
def test_bad_now_arguments_say_what_is_accepted(source: str, fragment: str) -> None:
    """A wrong format or offset fails when the template is parsed (at spec load), saying what now() takes."""
    with pytest.raises(TemplateError) as info:
        Template.parse(source)
    assert fragment in str(info.value)


def test_unix_time_template_is_one_unix_now() -> None:
    """Only a template that is exactly one {now(unix…)} renders a number (a JWT claim sent as one)."""
    assert unix_time_template("{now(unix)}") and unix_time_template("{now(unix_ms, -5m)}")
    assert not unix_time_template("{now()}") and not unix_time_template("{now(unix)}s")
    assert not unix_time_template("{now('%s')}".replace("%s", "%Y")) and not unix_time_template("{iat}")
