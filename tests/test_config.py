"""Settings from AUTHBRIDGE_* variables: defaults, every variable, and errors that name the variable.

The CLI shows these errors as one line: see tests/test_cli.py::test_errors_are_one_line.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from authbridge.config import Settings
from authbridge.errors import ConfigError


def test_defaults() -> None:
    """With no variables: data in ./data, SQLite there, public URL on loopback port 8000."""
    settings = Settings.from_env({})
    assert settings.data_dir == Path("data")
    assert settings.database_url == "sqlite+aiosqlite:///data/authbridge.db"
    assert settings.is_sqlite
    assert settings.key_file == Path("data/master.key")
    assert settings.encryption_keys is None
    assert settings.public_url == "http://127.0.0.1:8000"
    assert settings.redirect_uri == "http://127.0.0.1:8000/oauth/callback"
    assert (settings.host, settings.port, settings.log_level) == ("127.0.0.1", 8000, "info")
    assert not settings.allow_private_networks
    assert settings.allow_http_hosts == () and settings.hook_modules == ()
    assert settings.cache_sync_interval == 0.5
    assert (settings.max_upstream_body, settings.http_timeout) == (1024 * 1024, 10.0)


def test_empty_values_mean_the_default() -> None:
    """A variable set to the empty string is treated as unset."""
    names = [
        "AUTHBRIDGE_DATA_DIR",
        "AUTHBRIDGE_DATABASE_URL",
        "AUTHBRIDGE_ENCRYPTION_KEYS",
        "AUTHBRIDGE_PUBLIC_URL",
        "AUTHBRIDGE_HOST",
        "AUTHBRIDGE_PORT",
        "AUTHBRIDGE_LOG_LEVEL",
        "AUTHBRIDGE_ALLOW_HTTP_HOSTS",
        "AUTHBRIDGE_HOOK_MODULES",
    ]
    assert Settings.from_env(dict.fromkeys(names, "")) == Settings.from_env({})


def test_reads_os_environ_by_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Without a mapping, the process environment is read."""
    monkeypatch.setenv("AUTHBRIDGE_DATA_DIR", str(tmp_path))
    assert Settings.from_env().data_dir == tmp_path


def test_every_variable(tmp_path: Path) -> None:
    """Each AUTHBRIDGE_* variable lands in its setting."""
    settings = Settings.from_env(
        {
            "AUTHBRIDGE_DATA_DIR": str(tmp_path),
            "AUTHBRIDGE_DATABASE_URL": "postgres://u:pw@db.internal:5432/ab",
            "AUTHBRIDGE_ENCRYPTION_KEYS": "k1:AAAA",
            "AUTHBRIDGE_PUBLIC_URL": "https://auth.example.com/",
            "AUTHBRIDGE_ALLOW_PRIVATE_NETWORKS": "Yes",
            "AUTHBRIDGE_ALLOW_HTTP_HOSTS": "Legacy.Example, 10.0.0.5,[fd00::1]",
            "AUTHBRIDGE_HOOK_MODULES": "myhooks, company.authhooks",
            "AUTHBRIDGE_HOST": "0.0.0.0",
            "AUTHBRIDGE_PORT": "9001",
            "AUTHBRIDGE_LOG_LEVEL": "DEBUG",
            "AUTHBRIDGE_CACHE_SYNC_INTERVAL": "0.25",
            "AUTHBRIDGE_MAX_UPSTREAM_BODY": "65536",
        }
    )
    assert settings.data_dir == tmp_path
    assert settings.key_file == tmp_path / "master.key"
    assert settings.database_url == "postgresql+asyncpg://u:pw@db.internal:5432/ab"
    assert not settings.is_sqlite
    assert settings.encryption_keys == "k1:AAAA"
    assert "AAAA" not in repr(settings) and "pw@" not in repr(settings)
    assert settings.max_upstream_body == 65536
    assert settings.public_url == "https://auth.example.com"
    assert settings.redirect_uri == "https://auth.example.com/oauth/callback"
    assert settings.allow_private_networks
    assert settings.allow_http_hosts == ("legacy.example", "10.0.0.5", "fd00::1")
    assert settings.hook_modules == ("myhooks", "company.authhooks")
    assert (settings.host, settings.port, settings.log_level) == ("0.0.0.0", 9001, "debug")
    assert settings.cache_sync_interval == 0.25


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("sqlite:///x/ab.db", "sqlite+aiosqlite:///x/ab.db"),
        ("sqlite+aiosqlite:////abs/ab.db", "sqlite+aiosqlite:////abs/ab.db"),
        ("postgresql://h/db", "postgresql+asyncpg://h/db"),
        ("postgresql+asyncpg://h/db", "postgresql+asyncpg://h/db"),
    ],
)
def test_database_url_forms(raw: str, expected: str) -> None:
    """Plain sqlite and postgres URLs are given their async drivers."""
    assert Settings.from_env({"AUTHBRIDGE_DATABASE_URL": raw}).database_url == expected


def test_sqlite_file_follows_the_data_dir(tmp_path: Path) -> None:
    """The default SQLite file lives in AUTHBRIDGE_DATA_DIR."""
    settings = Settings.from_env({"AUTHBRIDGE_DATA_DIR": str(tmp_path / "d")})
    assert settings.database_url == f"sqlite+aiosqlite:///{tmp_path / 'd' / 'authbridge.db'}"


def test_http_and_hook_allow_lists() -> None:
    """Plain http is allowed to listed hosts (and loopback only with private networks); hooks by module prefix."""
    settings = Settings.from_env(
        {"AUTHBRIDGE_ALLOW_HTTP_HOSTS": "legacy.example", "AUTHBRIDGE_HOOK_MODULES": "myhooks"}
    )
    assert settings.allow_http("LEGACY.example")
    assert not settings.allow_http("localhost") and not settings.allow_http("other.example")
    assert Settings.from_env({"AUTHBRIDGE_ALLOW_PRIVATE_NETWORKS": "1"}).allow_http("[::1]")
    assert settings.hook_allowed("myhooks:f") and settings.hook_allowed("myhooks.crm.sub:f")
    assert not settings.hook_allowed("myhooksevil:f") and not settings.hook_allowed("other:f")


@pytest.mark.parametrize(
    ("name", "value", "accepts"),
    [
        ("AUTHBRIDGE_PORT", "http", "a port number from 1 to 65535"),
        ("AUTHBRIDGE_PORT", "0", "a port number from 1 to 65535"),
        ("AUTHBRIDGE_PORT", "70000", "a port number from 1 to 65535"),
        ("AUTHBRIDGE_PORT", "-1", "a port number from 1 to 65535"),
        ("AUTHBRIDGE_LOG_LEVEL", "verbose", "debug, info, warning, error"),
        ("AUTHBRIDGE_ALLOW_PRIVATE_NETWORKS", "maybe", "true/false"),
        ("AUTHBRIDGE_PUBLIC_URL", "auth.example.com", "an http(s) URL"),
        ("AUTHBRIDGE_PUBLIC_URL", "ftp://auth.example.com", "an http(s) URL"),
        ("AUTHBRIDGE_PUBLIC_URL", "https://auth.example.com/?x=1", "an http(s) URL"),
        ("AUTHBRIDGE_DATABASE_URL", "mysql://db/x", "sqlite+aiosqlite:///PATH or postgresql+asyncpg://"),
        ("AUTHBRIDGE_DATABASE_URL", "just-a-path.db", "sqlite+aiosqlite:///PATH"),
        ("AUTHBRIDGE_HOOK_MODULES", "good, not-a-module", "Python module names"),
        ("AUTHBRIDGE_ALLOW_HTTP_HOSTS", "http://legacy.example", "host names or IP addresses"),
        ("AUTHBRIDGE_CACHE_SYNC_INTERVAL", "0", "a number of seconds between 0 and 600"),
        ("AUTHBRIDGE_MAX_UPSTREAM_BODY", "1MB", "a whole number of bytes from 1024 to 268435456"),
        ("AUTHBRIDGE_MAX_UPSTREAM_BODY", "100", "a whole number of bytes from 1024 to 268435456"),
        ("AUTHBRIDGE_MAX_PARAMETER_LENGTH", "0", "a whole number of characters from 1 to 1048576"),
        ("AUTHBRIDGE_MAX_PARAMETER_LENGTH", "2k", "a whole number of characters from 1 to 1048576"),
    ],
)
def test_bad_values_name_the_variable(name: str, value: str, accepts: str) -> None:
    """A malformed value fails with the variable's name, the value and what it accepts."""
    with pytest.raises(ConfigError, match=f"^{name} .*{re.escape(accepts)}") as caught:
        Settings.from_env({name: value})
    message = str(caught.value)
    assert message.startswith(name)
    assert accepts in message
    assert "\n" not in message
    assert caught.value.exit_code == 2


def test_database_password_is_not_in_the_error() -> None:
    """A rejected database URL names only its scheme, never the password in it."""
    with pytest.raises(ConfigError, match="AUTHBRIDGE_DATABASE_URL has scheme 'mysql'") as caught:
        Settings.from_env({"AUTHBRIDGE_DATABASE_URL": "mysql://root:hunter2pw@db/x"})
    assert "hunter2pw" not in str(caught.value)


def test_body_and_sign_in_limits() -> None:
    """AUTHBRIDGE_MAX_BODY is a plain number of bytes (default 1 MiB); the sign-in rates are attempts per minute."""
    defaults = Settings.from_env({})
    assert (defaults.max_body, defaults.sign_in_per_minute, defaults.sign_in_global_per_minute) == (1048576, 10, 60)
    settings = Settings.from_env(
        {
            "AUTHBRIDGE_MAX_BODY": " 65536 ",
            "AUTHBRIDGE_SIGN_IN_PER_MINUTE": "3",
            "AUTHBRIDGE_SIGN_IN_GLOBAL_PER_MINUTE": "30",
        }
    )
    assert (settings.max_body, settings.sign_in_per_minute, settings.sign_in_global_per_minute) == (65536, 3, 30)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("AUTHBRIDGE_MAX_BODY", "1MiB"),
        ("AUTHBRIDGE_MAX_BODY", "0"),
        ("AUTHBRIDGE_MAX_BODY", "-5"),
        ("AUTHBRIDGE_MAX_BODY", "1e6"),
        ("AUTHBRIDGE_SIGN_IN_PER_MINUTE", "0"),
        ("AUTHBRIDGE_SIGN_IN_GLOBAL_PER_MINUTE", "many"),
    ],
)
def test_bad_limits_name_the_variable(name: str, value: str) -> None:
    """A limit that is not a positive whole number fails naming the variable, the value and the range."""
    with pytest.raises(ConfigError, match=rf"^{name} has value '{re.escape(value)}': use a whole number of \w+ from 1"):
        Settings.from_env({name: value})


def test_max_parameter_length() -> None:
    """AUTHBRIDGE_MAX_PARAMETER_LENGTH is 2048 by default and takes a whole number."""
    assert Settings.from_env({}).max_parameter_length == 2048
    assert Settings.from_env({"AUTHBRIDGE_MAX_PARAMETER_LENGTH": "64"}).max_parameter_length == 64


@pytest.mark.parametrize(
    ("public_url", "loopback_http", "expected"),
    [
        ("https://auth.example.com", "false", "https://auth.example.com/oauth/client-metadata.json"),
        ("https://auth.example.com/base/", "false", "https://auth.example.com/base/oauth/client-metadata.json"),
        ("http://auth.example.com", "true", None),  # http beyond loopback: never, whatever the flag
        ("http://127.0.0.1:8000", "false", None),
        ("http://127.0.0.1:8000", "true", "http://127.0.0.1:8000/oauth/client-metadata.json"),
        ("http://[::1]:8000", "true", "http://[::1]:8000/oauth/client-metadata.json"),
    ],
)
def test_client_metadata_url(public_url: str, loopback_http: str, expected: str | None) -> None:
    """The client ID metadata document is offered only from https (or loopback http when allowed)."""
    settings = Settings.from_env(
        {"AUTHBRIDGE_PUBLIC_URL": public_url, "AUTHBRIDGE_CLIENT_METADATA_LOOPBACK_HTTP": loopback_http}
    )
    assert settings.client_metadata_url == expected
