"""The shipped example specs load, validate and round-trip through YAML and plain data.

The loader itself is tested with hand-built and generated specs in ``test_loader.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from authbridge.cli import app
from authbridge.spec import (
    SECRET_MASK,
    Integration,
    check_parameter_values,
    dump_spec,
    load_spec,
    spec_to_dict,
    validate_spec,
)
from tests.spec.test_loader import masked

EXAMPLES = sorted((Path(__file__).parents[2] / "examples").glob("*.yaml"))
WITH_SECRET = [path for path in EXAMPLES if "\n  client_secret:" in path.read_text(encoding="utf-8")]
#: Parameter values a connected account of each example could have.
VALUES: dict[str, dict[str, str]] = {
    "acme": {"serverName": "dev", "apiSecret": "s"},
    "appstoreconnect": {
        "issuer_id": "57246542-96fe-1a63-e053-0824d011072a",
        "key_id": "2X9R4HXF34",
        "private_key": "-----BEGIN PRIVATE KEY-----\nMIGT...\n-----END PRIVATE KEY-----",
    },
    "ghostadmin": {"site": "https://blog.example.com", "key_id": "6489", "key_secret": "ab" * 32},
    "googleserviceaccount": {"service_account_key": '{"type": "service_account", "private_key": "..."}' * 60},
    "salesforcejwt": {"consumerKey": "3MVG9", "username": "ops@acme.example", "private_key": "-----BEGIN..."},
    "githubapp": {"app_id": "4242", "installation_id": "77", "app_private_key": "-----BEGIN PRIVATE KEY-----"},
    "aws": {"region": "eu-west-1", "service": "sts"},
    "giphy": {},
    "github": {},
    "hmacpartner": {"environment": "sandbox"},
    "jira": {"site": "my-team"},
    "legacycrm": {"tenant": "acme.legacycrm.example"},
    "netsuite": {"accountId": "1234567-sb1", "accountRealm": "1234567_SB1"},
    "noncelogin": {"tenant": "acme.vault.example"},
    "partnerapi": {"environment": "sandbox", "clientId": "id", "clientSecret": "s"},
    "salesforce": {"clientId": "id", "clientSecret": "s"},
    "slack": {},
    "trello": {},
}


def load(path: Path) -> Integration:
    return load_spec(path.read_text(encoding="utf-8"), source=path.name)


def test_every_example_is_covered() -> None:
    """The examples directory holds the documented examples, each with connection values here."""
    assert len(EXAMPLES) == len(VALUES)
    assert [path.stem for path in WITH_SECRET] == ["acme", "github", "netsuite-tba", "slack", "trello"]
    assert sorted(load(path).key for path in EXAMPLES) == sorted(VALUES)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_loads(path: Path) -> None:
    """Each example is a valid spec whose key is letters and digits."""
    assert load(path).key.isalnum()


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_round_trips_through_yaml(path: Path) -> None:
    """``load_spec(dump_spec(x)) == x`` for each example, the client secret read back as the mask."""
    spec = load(path)
    assert load_spec(dump_spec(spec)) == masked(spec)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_round_trips_through_plain_data(path: Path) -> None:
    """The JSON form (``spec_to_dict``) validates back to the same model, the secret masked."""
    spec = load(path)
    assert validate_spec(spec_to_dict(spec)) == masked(spec)
    assert Integration.model_validate(spec.model_dump(mode="json", by_alias=True)) == masked(spec)


@pytest.mark.parametrize("path", WITH_SECRET, ids=lambda p: p.stem)
def test_example_never_shows_its_client_secret(path: Path) -> None:
    """The dump, the plain data, the JSON dump and the repr hide the client secret."""
    spec = load(path)
    secret = spec.client_secret
    assert secret is not None
    assert spec_to_dict(spec)["auth"]["client_secret"] == SECRET_MASK
    assert spec.model_dump(mode="json")["auth"]["client_secret"] == SECRET_MASK
    for text in (dump_spec(spec), spec.model_dump_json(), repr(spec), str(spec), repr(spec.auth)):
        assert f"client_secret: {secret}" not in text
        assert f"'{secret}'" not in text and f'"{secret}"' not in text


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_accepts_realistic_connection_values(path: Path) -> None:
    """Each example's parameters accept the values a real connected account would give."""
    spec = load(path)
    result = check_parameter_values(spec, VALUES[spec.key])
    assert VALUES[spec.key].items() <= result.items()


def test_example_defaults_are_applied() -> None:
    """Salesforce's login host defaults to login.salesforce.com."""
    spec = load(next(p for p in EXAMPLES if p.stem == "salesforce"))
    assert check_parameter_values(spec, VALUES["salesforce"])["loginHost"] == "login.salesforce.com"


def test_every_example_passes_the_validate_command(runner: CliRunner) -> None:
    """``authbridge integrations validate`` accepts every file in examples/ (what a user runs first)."""
    result = runner.invoke(app, ["integrations", "validate", *map(str, EXAMPLES)])
    assert result.exit_code == 0, result.output
    assert result.output.count("ok: ") == len(EXAMPLES)
