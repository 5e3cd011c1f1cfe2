"""``authbridge`` commands off the main paths: migrate, unreadable spec files, bad pairs, plain-text listings."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from tests.test_cli import ACME, GIPHY, assert_one_line_error, invoke

TOKEN = "giphy-TOKEN-5e1f"


def _env(tmp_path: Path) -> dict[str, str]:
    return {"AUTHBRIDGE_DATA_DIR": str(tmp_path / "data")}


def test_migrate_creates_the_database(runner: CliRunner, tmp_path: Path) -> None:
    """``migrate`` brings a new database up to date, and says so; a second run changes nothing."""
    env = _env(tmp_path)
    first = invoke(runner, env, "migrate")
    assert first.exit_code == 0 and first.stderr.strip() == "database is up to date"
    assert (tmp_path / "data" / "authbridge.db").exists()
    assert invoke(runner, env, "migrate").exit_code == 0
    assert invoke(runner, env, "integrations", "list", "--json").stdout.strip() == "[]"


def test_a_folder_without_specs_is_one_error(runner: CliRunner, tmp_path: Path) -> None:
    """Applying a folder holding no .yaml/.yml file fails in one line naming the folder, saving nothing."""
    folder = tmp_path / "empty"
    folder.mkdir()
    (folder / "README.txt").write_text("no specs here")
    result = invoke(runner, _env(tmp_path), "integrations", "apply", str(folder))
    assert_one_line_error(result, str(folder), "holds no .yaml or .yml file")


def test_an_unreadable_spec_file_is_reported_with_the_others(runner: CliRunner, tmp_path: Path) -> None:
    """A file that is not UTF-8 is reported by name along with the good ones' fate: nothing is saved."""
    folder = tmp_path / "specs"
    folder.mkdir()
    (folder / "acme.yaml").write_text(ACME)
    (folder / "broken.yaml").write_bytes(b"key: \xff\xfe broken\n")
    env = _env(tmp_path)
    result = invoke(runner, env, "integrations", "apply", str(folder))
    assert result.exit_code != 0
    assert "broken.yaml" in result.stderr and "cannot read" in result.stderr
    assert "Traceback" not in result.stderr
    assert invoke(runner, env, "integrations", "list", "--json").stdout.strip() == "[]"


def test_a_pair_without_equals_is_one_error(runner: CliRunner, tmp_path: Path) -> None:
    """A credential without ``name=`` fails before anything is created, naming the option, never echoing the value."""
    env = _env(tmp_path)
    spec = tmp_path / "giphy.yaml"
    spec.write_text(GIPHY)
    assert invoke(runner, env, "integrations", "apply", str(spec)).exit_code == 0
    for given in (TOKEN, f"={TOKEN}"):
        result = invoke(runner, env, "connections", "create", "giphy", "--name", "DEV", "--credential", given)
        assert_one_line_error(result, "--credential takes name=value")
        assert TOKEN not in result.output  # a value given without its name is still never echoed
    assert invoke(runner, env, "connections", "list", "--json").stdout.strip() == "[]"


def test_plain_listing_and_showing_of_connections(runner: CliRunner, tmp_path: Path) -> None:
    """Without --json: an empty list says how to start; then a table, and ``show`` prints one field a line."""
    env = _env(tmp_path)
    empty = invoke(runner, env, "connections", "list")
    assert empty.exit_code == 0 and empty.stdout == ""
    assert "authbridge connections create" in empty.stderr
    spec = tmp_path / "giphy.yaml"
    spec.write_text(GIPHY)
    assert invoke(runner, env, "integrations", "apply", str(spec)).exit_code == 0
    created = invoke(runner, env, "connections", "create", "giphy", "--name", "PROD", "-c", f"token={TOKEN}")
    assert created.exit_code == 0, created.stderr
    cid = created.stdout.strip()

    listed = invoke(runner, env, "connections", "list")
    header, row = listed.stdout.splitlines()
    assert header.split() == ["ID", "INTEGRATION", "STATUS", "EXPIRES", "NAME"]
    assert row.split() == [cid, "giphy", "active", "-", "PROD"]

    shown = invoke(runner, env, "connections", "show", cid)
    fields = dict(line.split(":", 1) for line in shown.stdout.splitlines())
    assert fields["id"].strip() == cid and fields["status"].strip() == "active" and fields["name"].strip() == "PROD"
    for result in (created, listed, shown):
        assert TOKEN not in result.output
