"""Placing credentials when the integration or connection lacks what is needed: a clear error, no request."""

from __future__ import annotations

import pytest

from authbridge.auth import credential_headers_and_query
from authbridge.auth.base import AuthContext
from authbridge.auth.placement import base_url
from authbridge.errors import ConnectionStateError, TemplateError
from authbridge.spec import Integration


def test_no_base_url_means_nowhere_to_send_requests() -> None:
    """An integration without ``request.base_url`` cannot be called; the error says why."""
    ctx = AuthContext(Integration.model_validate({"key": "bare", "name": "Bare", "auth": {"type": "none"}}))
    with pytest.raises(
        TemplateError, match=r"bare: request\.base_url is not set, so there is nowhere to send requests"
    ):
        base_url(ctx)


def test_basic_auth_without_a_username_and_password_is_a_state_error() -> None:
    """A basic-auth connection whose inputs were lost has nothing to put in Authorization: a state error."""
    spec = Integration.model_validate({"key": "basic", "name": "B", "auth": {"type": "basic"}})
    with pytest.raises(ConnectionStateError, match="basic: the connection has no username and password"):
        credential_headers_and_query(AuthContext(spec, inputs={"username": "alice"}))
    headers, _ = credential_headers_and_query(AuthContext(spec, inputs={"username": "alice", "password": "pw"}))
    assert headers["Authorization"] == "Basic YWxpY2U6cHc="
