"""Every internal object that holds a token or a secret shows none of it in ``repr()`` or ``str()``.

Add a new such object to ``objects_holding_the_canary`` when you write one.
"""

from __future__ import annotations

import typing
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from authbridge.auth import AuthContext, TokenSet
from authbridge.auth.hooks import HookContext
from authbridge.auth.tokens import _Answer
from authbridge.broker import FreshToken
from authbridge.client._calls import Call, Token
from authbridge.config import Settings
from authbridge.proxy.forward import _Target
from authbridge.spec import Integration, RefreshPolicy
from authbridge.store import ConnectionRecord, CredentialRecord, Key
from authbridge.store.records import EventRecord, FlowRecord
from authbridge.store.webhooks import ClaimedDelivery

CANARY = "CANARY-s3cr3t-9f1d"
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def objects_holding_the_canary() -> list[object]:
    """One of each internal object, with the canary in every field that may hold a secret."""
    spec = Integration.model_validate(
        {
            "key": "acme",
            "name": "Acme",
            "auth": {"type": "oauth2", "grant_type": "client_credentials", "token_url": "https://a.example/t"}
            | {"client_id": "cid", "client_secret": CANARY},
        }
    )
    secret_map = {"password": CANARY, "apiSecret": CANARY}
    event = EventRecord(1, "connection.created", "c1", "acme", {}, NOW)
    return [
        spec,
        TokenSet(access_token=CANARY, refresh_token=CANARY, extra={"id_token": CANARY}, raw={"a": CANARY}),
        AuthContext(
            integration=spec,
            parameters=secret_map,
            inputs=secret_map,
            credentials={"x": CANARY},
            access_token=CANARY,
            refresh_token=CANARY,
        ),
        HookContext(
            integration="acme",
            parameters=secret_map,
            inputs=secret_map,
            credentials={"access_token": CANARY},
            http=httpx.AsyncClient(),
            code=CANARY,
            code_verifier=CANARY,
            query={"code": CANARY},
        ),
        _Answer("acme", "https://a.example/t", 400, secrets=(CANARY,)),
        CredentialRecord(
            access_token=CANARY,
            refresh_token=CANARY,
            raw={"access_token": CANARY},
            extra={"x": CANARY},
            inputs=secret_map,
        ),
        ConnectionRecord(
            id="c1",
            integration_id="i1",
            integration_key="acme",
            name="DEV",
            status="active",
            parameters=secret_map,
            secret_names=frozenset(secret_map),
            last_error=None,
            warning=None,
            expires_at=None,
            last_refreshed_at=None,
            version=1,
            created_at=NOW,
            updated_at=NOW,
        ),
        FlowRecord("c1", CANARY, "https://ab.example/cb", None, NOW, NOW),
        ClaimedDelivery(id=1, webhook_id="w1", url="https://hook.example", secret=CANARY, attempts=1, event=event),
        FreshToken(CANARY, "Bearer", None),
        Token(CANARY, "Bearer", None),
        _Target(
            base=f"https://a.example/{CANARY}",
            headers={"Authorization": f"Bearer {CANARY}"},
            injected=frozenset({b"authorization"}),
            query=[("key", CANARY)],
            token=CANARY,
            policy=RefreshPolicy(),
            good_until=0.0,
            integration="acme",
        ),
        Call(
            "POST",
            "/connections",
            parse=lambda r: r,
            params={"token": CANARY},
            json={"credentials": {"password": CANARY}},
            content=CANARY.encode(),
            headers={"Authorization": f"Bearer {CANARY}"},
        ),
        Settings(
            data_dir=Path("/tmp/x"),  # noqa: S108 - never written
            database_url=f"postgresql+asyncpg://app:{CANARY}@db.example/authbridge",
            encryption_keys=f"k1:{CANARY}",
        ),
        Key("k1", CANARY.encode().ljust(32, b"x")),
    ]


@pytest.mark.parametrize("value", objects_holding_the_canary(), ids=lambda v: type(v).__name__)
def test_repr_and_str_show_no_secret(value: typing.Any) -> None:
    """Neither ``repr()`` nor ``str()`` (nor an f-string) of the object shows the secret it holds."""
    for text in (repr(value), str(value), f"{value}", f"{value!r}"):
        assert CANARY not in text
        assert CANARY.encode().hex() not in text
