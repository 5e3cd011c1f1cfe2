"""Redaction of secrets from log lines: the ``redact`` function and the logging filter uvicorn's records pass.

The end-to-end check (a real server's access log) is in tests/test_cli.py::test_run_serves_health_and_openapi.
"""

from __future__ import annotations

import base64
import io
import json
import logging
from collections.abc import Iterator
from urllib.parse import quote, quote_plus

import pytest

from authbridge.redact import RedactingFilter, basic_credentials, redact, scrub

API_KEY = "ab_" + "Zq9" * 14


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("GET /oauth/callback?code=AUTHCODE1&state=STATE2 HTTP/1.1", "GET /oauth/callback?code=***&state=*** HTTP/1.1"),
        ("access_token=AT3&token_type=bearer", "access_token=***&token_type=bearer"),
        ("refresh_token=RT4 client_secret=CS5", "refresh_token=*** client_secret=***"),
        ("grant_type=password&password=PW6&code_verifier=CV7", "grant_type=password&password=***&code_verifier=***"),
        ("Authorization: Bearer eyJhbGciOi.J9.sig-_~+/=", "Authorization: Bearer ***"),
        ("authorization: bearer abc123", "authorization: bearer ***"),
        ("Authorization: Basic dXNlcjpwYXNz", "Authorization: Basic ***"),
        (f"X-AuthBridge-Key: {API_KEY}", "X-AuthBridge-Key: ab_***"),
        (f"key {API_KEY} used", "key ab_*** used"),
        ('{"access_token": "AT8", "expires_in": 3600}', '{"access_token": "***", "expires_in": 3600}'),
        ('{"refresh_token":"R\\"T9","x":"y"}', '{"refresh_token":"***","x":"y"}'),
        ("{'client_secret': 'CS10', 'name': 'n'}", "{'client_secret': '***', 'name': 'n'}"),
        ('{"Password": "PW11"}', '{"Password": "***"}'),
    ],
)
def test_redact(text: str, expected: str) -> None:
    """Each kind of secret-bearing text is masked, and the text around it is kept."""
    assert redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "GET /integrations/acme HTTP/1.1 200",
        "barcode=123 postcode=456 mystate=7",  # names inside longer words are not fields
        "ab_short",
        '{"name": "Acme", "expires_in": 3600}',
    ],
)
def test_leaves_ordinary_text(text: str) -> None:
    """Text without secrets passes unchanged."""
    assert redact(text) == text


@pytest.fixture
def logger() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger with the redacting filter and its own handler writing to a buffer."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(name)s %(message)s"))
    log = logging.getLogger("tests.redact")
    log.addFilter(RedactingFilter())
    log.addHandler(handler)
    log.setLevel(logging.DEBUG)
    log.propagate = False
    try:
        yield log, stream
    finally:
        log.removeHandler(handler)
        log.filters.clear()
        log.propagate = True


def test_filter_redacts_records_with_args(logger: tuple[logging.Logger, io.StringIO]) -> None:
    """A record with %-args, as uvicorn's access log writes, is redacted after formatting."""
    log, stream = logger
    log.info(
        '%s - "%s %s HTTP/%s" %d',
        "127.0.0.1:5555",
        "GET",
        "/oauth/callback?code=AUTHCODE1&state=STATE2",
        "1.1",
        200,
    )
    assert stream.getvalue() == 'tests.redact 127.0.0.1:5555 - "GET /oauth/callback?code=***&state=*** HTTP/1.1" 200\n'


def test_filter_redacts_plain_messages_and_dict_args(logger: tuple[logging.Logger, io.StringIO]) -> None:
    """Plain messages, mapping arguments and non-string messages are redacted too."""
    log, stream = logger
    log.debug("sending Authorization: Bearer TOKEN12")
    log.debug("%(who)s used %(key)s", {"who": "ci", "key": API_KEY})
    log.debug({"access_token": "AT13"})
    out = stream.getvalue()
    assert "TOKEN12" not in out and API_KEY not in out and "AT13" not in out
    assert out.splitlines() == [
        "tests.redact sending Authorization: Bearer ***",
        "tests.redact ci used ab_***",
        "tests.redact {'access_token': '***'}",
    ]


def test_filter_redacts_tracebacks(logger: tuple[logging.Logger, io.StringIO]) -> None:
    """An exception's traceback text is redacted as well as the message."""
    log, stream = logger
    try:
        raise RuntimeError("upstream said access_token=AT14")
    except RuntimeError:
        log.exception("failed for %s", "code=CODE15")
    out = stream.getvalue()
    assert "AT14" not in out and "CODE15" not in out
    assert "RuntimeError: upstream said access_token=***" in out


def test_filter_survives_a_bad_format(
    logger: tuple[logging.Logger, io.StringIO], capsys: pytest.CaptureFixture[str]
) -> None:
    """A record whose arguments do not fit its format is still redacted, and logging reports no error."""
    log, stream = logger
    log.info("token for %s and %s", "access_token=AT16")
    assert "access_token=***" in stream.getvalue()
    assert "AT16" not in stream.getvalue() + capsys.readouterr().err


@pytest.mark.parametrize(
    "text",
    [
        "GET https://api.example/me?private_token=glpat-SECRET1",
        "POST /x?client_assertion=eyJSECRET1&x=1",
        "hapikey=SECRET1",
        "url?apiSecret=SECRET1",
        "x-refresh_token=SECRET1",
    ],
)
def test_names_ending_in_a_sensitive_word_are_redacted(text: str) -> None:
    """Query fields whose names end in token, secret, assertion, apikey... are redacted too."""
    assert "SECRET1" not in redact(text)


SECRET = 's3cret:with+chars /\u00e9"x'


@pytest.mark.parametrize(
    "form",
    [
        SECRET,
        quote(SECRET, safe=""),
        quote(SECRET),
        quote_plus(SECRET),
        quote(SECRET, safe="").lower(),
        json.dumps(SECRET)[1:-1],
        json.dumps(SECRET, ensure_ascii=False)[1:-1],
        base64.b64encode(SECRET.encode()).decode(),
        base64.urlsafe_b64encode(SECRET.encode()).decode().rstrip("="),
    ],
)
def test_scrub_every_echoed_form(form: str) -> None:
    """A secret is scrubbed verbatim, percent- and form-encoded, JSON-escaped and base64-encoded."""
    assert scrub(f"upstream said [{form}] twice: {form}", [SECRET]) == "upstream said [***] twice: ***"


def test_scrub_an_echoed_basic_header() -> None:
    """The base64 of ``client_id:client_secret`` (raw or form-encoded first) is scrubbed too."""
    pairs = basic_credentials("my client", SECRET)
    for pair in pairs:
        echoed = base64.b64encode(pair.encode()).decode()
        assert scrub(f"bad credentials {echoed}.", pairs) == "bad credentials ***."
    assert basic_credentials(None, SECRET) == () and basic_credentials("id", None) == ()


def test_scrub_leaves_other_text_and_short_values() -> None:
    """Text without the secret is unchanged; values under 3 characters are not treated as secrets."""
    assert scrub("nothing to see: s3cre", [SECRET, "ab", None]) == "nothing to see: s3cre"
    assert scrub("", [SECRET]) == ""
