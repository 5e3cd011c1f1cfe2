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
