"""Saving an integration never sends stored secrets somewhere new, and a parameter made secret gets encrypted.

On SQLite and PostgreSQL. The pure rules are in tests/spec/test_destinations.py; the API and CLI
paths in tests/api/test_secret_moves_api.py and tests/test_cli_secret_moves.py.
"""

from __future__ import annotations

import json
import typing

import pytest
from sqlalchemy import text

from authbridge.errors import SpecError
from authbridge.spec import Integration, validate_spec
from authbridge.store import Store

CLIENT_SECRET = "client-SECRET-4d5e6f"
VALUE = "team-VALUE-a1b2c3"
Json = dict[str, typing.Any]


def spec_data(*, secret_team: bool = False, token_url: str = "https://login.acme.example/token") -> Json:
    return {
        "key": "acme",
        "name": "Acme",
        "parameters": [{"name": "team", "secret": secret_team}, {"name": "region"}],
        "auth": {
            "type": "oauth2",
            "authorization_url": "https://login.acme.example/authorize",
            "token_url": token_url,
            "client_id": "abc",
            "client_secret": CLIENT_SECRET,
        },
        "request": {"base_url": "https://api.acme.example", "headers": {"X-Team": "{team}"}},
    }


def spec(**kwargs: typing.Any) -> Integration:
    return validate_spec(spec_data(**kwargs))


def masked(**kwargs: typing.Any) -> Integration:
    data = spec_data(**kwargs)
    data["auth"]["client_secret"] = "********"
    return validate_spec(data)


async def raw_connection(store: Store, connection_id: str) -> tuple[str, str | None]:
    """The ``parameters`` and ``secret_parameters`` columns as the database holds them."""
    async with store.engine.connect() as conn:
        row = (
            await conn.execute(
                text("SELECT parameters, secret_parameters FROM connections WHERE id = :id"), {"id": connection_id}
            )
        ).one()
    params = row[0] if isinstance(row[0], str) else json.dumps(row[0])
    return params, row[1]


async def test_a_refused_move_changes_nothing(store: Store) -> None:
    """A kept client secret sent to a new token host: SpecError naming the field; the stored spec stays."""
    await store.integrations.save(spec())
    with pytest.raises(SpecError, match="1 problem") as caught:
        await store.integrations.save(masked(token_url="https://attacker.example/token"))
    assert caught.value.errors[0].path == "auth.token_url"
    assert "give auth.client_secret again" in caught.value.errors[0].message
    assert CLIENT_SECRET not in str(caught.value)
    record = await store.integrations.get("acme")
    assert record.version == 1
    assert record.spec == spec()


async def test_the_secret_given_again_may_go_to_a_new_host(store: Store) -> None:
    """Whoever types the client secret again may send it anywhere (no connections yet)."""
    await store.integrations.save(spec())
    record, _ = await store.integrations.save(spec(token_url="https://login.acme-new.example/token"))
    assert record.version == 2 and record.spec.client_secret == CLIENT_SECRET


async def test_accounts_keep_their_secrets_unless_the_operator_confirms(store: Store) -> None:
    """With connections, a new token host is refused even with the secret given, unless ``move_secrets``."""
    await store.integrations.save(spec())
    await store.connections.create(integration_key="acme", name="DEV", parameters={"team": "t"})
    moved = spec(token_url="https://login.acme-new.example/token")
    with pytest.raises(SpecError, match="1 problem") as caught:
        await store.integrations.save(moved)
    assert "1 connected account" in caught.value.errors[0].message
    assert await store.integrations.check_save(moved) == list(caught.value.errors)
    assert (await store.integrations.get("acme")).version == 1
    assert await store.integrations.check_save(moved, move_secrets=True) == []
    record, _ = await store.integrations.save(moved, move_secrets=True)
    assert record.version == 2


async def test_a_parameter_made_secret_is_encrypted_and_masked(store: Store) -> None:
    """Declaring ``team`` secret moves every stored value to the encrypted column in the same save."""
    await store.integrations.save(spec())
    first = await store.connections.create(
        integration_key="acme", name="DEV", parameters={"team": VALUE, "region": "eu"}
    )
    other = await store.connections.create(integration_key="acme", name="QA", parameters={"region": "us"})
    assert first.public_parameters() == {"team": VALUE, "region": "eu"}
    assert VALUE in (await raw_connection(store, first.id))[0]

    await store.integrations.save(masked(secret_team=True))

    record = await store.connections.get(first.id)
    assert record.public_parameters() == {"team": "********", "region": "eu"}
    assert record.parameters == {"team": VALUE, "region": "eu"}  # still usable in templates
    clear, encrypted = await raw_connection(store, first.id)
    assert VALUE not in clear and "region" in clear
    assert encrypted is not None and encrypted.startswith("v1.k1.") and VALUE not in encrypted
    assert (await store.connections.get(other.id)).public_parameters() == {"region": "us"}
    listed = {c.id: c.public_parameters() for c in await store.connections.list(integration_key="acme")}
    assert listed[first.id]["team"] == "********"


async def test_a_connection_created_from_the_old_spec_is_stored_encrypted(store: Store) -> None:
    """A caller still holding the spec from before the change (no secret names) cannot store the value in clear."""
    await store.integrations.save(spec())
    await store.integrations.save(masked(secret_team=True))
    late = await store.connections.create(integration_key="acme", name="DEV", parameters={"team": VALUE})
    assert late.public_parameters() == {"team": "********"}
    assert VALUE not in (await raw_connection(store, late.id))[0]


async def test_a_secret_made_public_stays_encrypted(store: Store) -> None:
    """Secret to not secret decrypts nothing: stored values stay encrypted and masked; new ones are in clear."""
    await store.integrations.save(spec(secret_team=True))
    old = await store.connections.create(
        integration_key="acme", name="DEV", parameters={"team": VALUE}, secret_names={"team"}
    )
    await store.integrations.save(masked(secret_team=False))
    assert (await store.connections.get(old.id)).public_parameters() == {"team": "********"}
    assert VALUE not in (await raw_connection(store, old.id))[0]
    new = await store.connections.create(integration_key="acme", name="QA", parameters={"team": "visible"})
    assert new.public_parameters() == {"team": "visible"}


async def test_a_refused_save_encrypts_nothing(store: Store) -> None:
    """The move check runs first: a refused update leaves the clear values where they were."""
    await store.integrations.save(spec())
    conn = await store.connections.create(integration_key="acme", name="DEV", parameters={"team": VALUE})
    with pytest.raises(SpecError, match="2 problems"):
        await store.integrations.save(masked(secret_team=True, token_url="https://attacker.example/token"))
    assert (await store.connections.get(conn.id)).public_parameters() == {"team": VALUE}


async def test_secret_again_encrypts_what_was_stored_in_clear_meanwhile(store: Store) -> None:
    """Secret, then not, then secret again: a value stored in clear while it was not secret gets encrypted."""
    await store.integrations.save(spec(secret_team=True))
    await store.integrations.save(masked(secret_team=False))
    meanwhile = await store.connections.create(integration_key="acme", name="DEV", parameters={"team": VALUE})
    assert meanwhile.public_parameters() == {"team": VALUE}
    await store.integrations.save(masked(secret_team=True))
    assert (await store.connections.get(meanwhile.id)).public_parameters() == {"team": "********"}
    assert VALUE not in (await raw_connection(store, meanwhile.id))[0]
