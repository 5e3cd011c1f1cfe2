"""The server-side keeping of secrets typed into a form that came back with an error (``console.drafts``).

The browser test of the same is ``test_new_user_browser.py::test_the_client_secret_survives_a_form_error...``.
"""

from __future__ import annotations

from authbridge.console.drafts import DRAFT_SECONDS, SecretDrafts


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_draft_is_returned_to_its_own_session_only() -> None:
    """The values come back for the session that kept them; another session, or a made-up id, gets nothing."""
    drafts = SecretDrafts()
    draft = drafts.keep("sid-a", {"oauth2.client_secret": "s3cret", "other": ""})
    assert draft
    assert drafts.get("sid-a", draft) == {"oauth2.client_secret": "s3cret"}
    assert drafts.get("sid-b", draft) == {}
    assert drafts.get("sid-a", "made-up") == {}
    assert drafts.get("", draft) == {}
    assert "s3cret" not in repr(drafts)


def test_nothing_to_keep_makes_no_draft() -> None:
    """Empty values, or no session, keep nothing."""
    drafts = SecretDrafts()
    assert drafts.keep("sid", {"a": ""}) == ""
    assert drafts.keep("", {"a": "x"}) == ""


def test_drafts_expire_and_are_bounded() -> None:
    """A draft lasts ten minutes; past ``limit`` drafts the oldest go first."""
    clock = _Clock()
    drafts = SecretDrafts(limit=2, clock=clock)
    first = drafts.keep("sid", {"a": "1"})
    clock.now += DRAFT_SECONDS + 1
    assert drafts.get("sid", first) == {}
    second = drafts.keep("sid", {"a": "2"})
    third = drafts.keep("sid", {"a": "3"})
    fourth = drafts.keep("sid", {"a": "4"})
    assert drafts.get("sid", second) == {}
    assert drafts.get("sid", third) == {"a": "3"}
    assert drafts.get("sid", fourth) == {"a": "4"}


def test_expiring_soon_is_relative_to_the_token_lifetime() -> None:
    """A healthy 5-minute token is active for its first half; a one-hour one "expiring soon" in its last 30 minutes."""
    from datetime import UTC, datetime, timedelta

    from authbridge.console.accounts import status_of
    from authbridge.spec import Integration
    from authbridge.store import ConnectionRecord

    spec = Integration.model_validate({"key": "k", "name": "K", "auth": {"type": "api_token"}})
    now = datetime(2026, 1, 1, tzinfo=UTC)

    def badge(lifetime: timedelta, left: timedelta) -> str:
        obtained = now + left - lifetime
        record = ConnectionRecord(
            id="c", integration_id="i", integration_key="k", name="n", status="active", parameters={},
            secret_names=frozenset(), last_error=None, warning=None, expires_at=now + left,
            last_refreshed_at=obtained, version=1, created_at=obtained, updated_at=obtained,
        )  # fmt: skip
        return status_of(record, spec, now).label

    assert badge(timedelta(minutes=5), timedelta(minutes=4)) == "active"
    assert badge(timedelta(minutes=5), timedelta(minutes=2)) == "expiring soon"
    assert badge(timedelta(hours=1), timedelta(minutes=40)) == "active"
    assert badge(timedelta(hours=1), timedelta(minutes=20)) == "expiring soon"
    assert badge(timedelta(hours=1), timedelta(minutes=-1)) == "expired"
