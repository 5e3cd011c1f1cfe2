"""``authbridge webhooks add | list | remove`` (the store side is tests/store/test_webhooks_store.py)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner, Result

from authbridge.cli import app


def _invoke(runner: CliRunner, env: dict[str, str], *args: str) -> Result:
    return runner.invoke(app, list(args), env=env, catch_exceptions=False)


def _env(tmp_path: Path) -> dict[str, str]:
    return {"AUTHBRIDGE_DATA_DIR": str(tmp_path / "data")}


def test_add_list_remove(runner: CliRunner, tmp_path: Path) -> None:
    """add prints the secret alone on stdout, list shows the webhook without it, remove deletes it."""
    env = _env(tmp_path)
    added = _invoke(runner, env, "webhooks", "add", "https://hooks.example.com/authbridge")
    assert added.exit_code == 0, added.stderr
    secret = added.stdout.strip()
    assert secret.startswith("whsec_") and added.stdout == secret + "\n"
    assert "shown only this once" in added.stderr and secret not in added.stderr

    listed = _invoke(runner, env, "webhooks", "list", "--json")
    [row] = json.loads(listed.stdout)
    assert (row["url"], row["pending"], row["delivered"], row["failed"]) == (
        "https://hooks.example.com/authbridge",
        0,
        0,
        0,
    )
    table = _invoke(runner, env, "webhooks", "list")
    assert row["id"] in table.stdout and "https://hooks.example.com/authbridge" in table.stdout
    assert secret not in listed.stdout + table.stdout

    removed = _invoke(runner, env, "webhooks", "remove", row["id"])
    assert removed.exit_code == 0 and removed.stdout == "" and row["id"] in removed.stderr
    assert json.loads(_invoke(runner, env, "webhooks", "list", "--json").stdout) == []
    empty = _invoke(runner, env, "webhooks", "list")
    assert empty.stdout == "" and "no webhooks yet" in empty.stderr


def test_add_refuses_a_non_http_url(runner: CliRunner, tmp_path: Path) -> None:
    """A non-http(s) URL is refused with one line on stderr, nothing on stdout, and nothing stored."""
    env = _env(tmp_path)
    for url in ("ftp://example.com/hook", "hooks.example.com"):
        result = _invoke(runner, env, "webhooks", "add", url)
        assert result.exit_code == 2
        assert result.stdout == ""
        assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    assert not (tmp_path / "data").exists()  # refused before the database was opened


def test_remove_unknown_is_an_error(runner: CliRunner, tmp_path: Path) -> None:
    """Removing an id that does not exist says so and exits 1."""
    result = _invoke(runner, _env(tmp_path), "webhooks", "remove", "f" * 32)
    assert result.exit_code == 1
    assert result.stderr == f"error: no webhook with id '{'f' * 32}'\n"
