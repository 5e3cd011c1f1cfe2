"""The ``rate_limit`` and ``pagination`` blocks of a spec: what is accepted, refused, and written back."""

from __future__ import annotations

import pytest

from authbridge.errors import SpecError
from authbridge.spec import dump_spec, load_spec

SPEC = """
key: paged
name: Paged API
request: {base_url: https://api.example.com/v1}
rate_limit:
  retry_on: [429, 503]
  wait_from:
    - {header: Retry-After}
    - {header: X-RateLimit-Reset, format: unix}
    - {body: error.retry_after, format: milliseconds}
  remaining_header: X-RateLimit-Remaining
  max_wait: 45s
  max_retries: 4
  max_concurrent: 3
  queue_timeout: 5s
  pace: {requests: 10, per: 1s}
  documented: 10 requests a second
pagination:
  type: cursor
  cursor_param: Range
  cursor_in: header
  next_header: Next-Range
  limit_param: page[size]
  limit: 50
  max_limit: 200
  items: data
"""


def test_both_blocks_round_trip() -> None:
    """Every field is read, and written back as it was (durations as text)."""
    spec = load_spec(SPEC)
    assert spec.rate_limit is not None and spec.pagination is not None
    assert spec.rate_limit.pace is not None and spec.rate_limit.pace.requests == 10
    assert spec.pagination.cursor_in == "header"
    text = dump_spec(spec)
    assert "max_wait: 45s" in text and "per: 1s" in text
    assert load_spec(text) == spec


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("next_header: Next-Range", "next_header: Next Range"), "not a valid HTTP header name"),
        (("items: data", "items: data..x"), "must be a dotted path"),
        (("limit_param: page[size]", "limit_param: 'page size'"), "1 to 100 visible characters"),
        (("cursor_param: Range", "cursor_param: 'a(b)'"), "needs cursor_param to be a header name"),
        (("remaining_header: X-RateLimit-Remaining", "remaining_header: 'a b'"), "not a valid HTTP header name"),
        (("type: cursor", "type: scroll"), "pagination.type"),
        (("max_wait: 45s", "max_wait: 11m"), "between 0s and 10m"),
    ],
)
def test_bad_fields_are_refused(change: tuple[str, str], message: str) -> None:
    with pytest.raises(SpecError, match=message.replace("[", r"\[")):
        load_spec(SPEC.replace(*change))


def test_specs_without_them_stay_as_they_were() -> None:
    """A spec without the blocks has neither, and writes neither back."""
    spec = load_spec("key: plain\nname: Plain\n")
    assert spec.rate_limit is None and spec.pagination is None
    assert "rate_limit" not in dump_spec(spec)
