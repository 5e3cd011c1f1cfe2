"""The container image: the Dockerfile's shape, and its install and start commands run in a clean venv.

No Docker daemon is needed: the test takes the Dockerfile's own RUN, HEALTHCHECK and CMD lines and
runs them here (paths moved into a temporary directory), then checks ``/ready``.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from tests.proxy.upstream import free_port

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"


def _stages() -> list[list[tuple[str, str]]]:
    """The Dockerfile's instructions (continuations joined, comments dropped), one list per stage."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    stages: list[list[tuple[str, str]]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, rest = line.partition(" ")
        if instruction.upper() == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((instruction.upper(), rest.strip()))
    return stages


def _args(stage: list[tuple[str, str]], instruction: str) -> list[str]:
    return [rest for name, rest in stage if name == instruction]


def test_the_dockerfile_builds_in_one_stage_and_runs_slim_and_unprivileged() -> None:
    """Two stages on slim Python; the final one gets wheels only, runs as a non-root user, checks /health."""
    build, final = _stages()
    assert re.fullmatch(r"python:\$\{PYTHON_VERSION\}-slim AS build", _args(build, "FROM")[0])
    assert _args(final, "FROM") == ["python:${PYTHON_VERSION}-slim"]
    assert _args(final, "COPY") == ["--from=build /wheels /wheels"]  # no source tree, no build stage leftovers
    run_lines = " ".join(_args(final, "RUN"))
    for tool in ("apt-get", "gcc", "build-essential", "git"):
        assert tool not in run_lines
    (user,) = _args(final, "USER")
    assert user not in {"root", "0"} and "useradd --system --uid 10001" in run_lines
    (healthcheck,) = _args(final, "HEALTHCHECK")
    assert "/health" in healthcheck and "--interval=" in healthcheck
    assert json.loads(_args(final, "CMD")[0]) == ["authbridge", "run", "--host", "0.0.0.0"]


def test_compose_runs_on_postgres_with_the_key_from_a_secret_file() -> None:
    """PostgreSQL on a named volume; the key ring and the database URL come from secret files, not the file itself."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert "pgdata" in compose["volumes"]
    assert compose["services"]["postgres"]["volumes"] == ["pgdata:/var/lib/postgresql/data"]
    env = compose["services"]["authbridge"]["environment"]
    assert env["AUTHBRIDGE_ENCRYPTION_KEYS_FILE"].startswith("/run/secrets/")
    assert env["AUTHBRIDGE_DATABASE_URL_FILE"].startswith("/run/secrets/")
    assert "AUTHBRIDGE_ENCRYPTION_KEYS" not in env and "AUTHBRIDGE_DATABASE_URL" not in env
    assert {s["file"] for s in compose["secrets"].values()} == {
        "./secrets/postgres_password",
        "./secrets/database_url",
        "./secrets/encryption_keys",
    }
    assert compose["services"]["authbridge"]["depends_on"]["postgres"]["condition"] == "service_healthy"


def _moved(command: str, tmp: Path) -> str:
    """A Dockerfile command with the image's paths moved under ``tmp``."""
    for image_path, here in (("/opt/authbridge", tmp / "venv"), ("/wheels", tmp / "wheels"), ("/src", ROOT)):
        command = command.replace(image_path, str(here))
    return command


def test_the_image_commands_install_the_wheel_in_a_clean_venv_and_it_becomes_ready(tmp_path: Path) -> None:
    """pip wheel, then the wheel alone into a fresh venv; `authbridge run --host 0.0.0.0` answers /ready 200."""
    build, final = _stages()
    # `python` in the image is a plain interpreter: here, the one this test's venv was made from.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    base_python = Path(sys.base_prefix) / "bin" / "python3"
    (bin_dir / "python").symlink_to(base_python)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AUTHBRIDGE_", "VIRTUAL_ENV", "PYTHON"))},
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
    }
    for command in (*_args(build, "RUN"), *_args(final, "RUN")):
        if "useradd" in command:
            continue  # the user exists only in the image; the test runs as whoever runs it
        done = subprocess.run(
            ["/bin/bash", "-c", _moved(command, tmp_path)], env=env, cwd=tmp_path, capture_output=True, text=True
        )
        assert done.returncode == 0, (command, done.stdout[-2000:], done.stderr[-2000:])
    venv = tmp_path / "venv"
    located = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import authbridge; print(authbridge.__file__)"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert located.stdout.startswith(str(venv))  # the installed wheel, not this checkout

    keys = subprocess.run(
        [str(venv / "bin" / "authbridge"), "encryption", "generate-key"], env=env, capture_output=True, text=True
    )
    (tmp_path / "encryption_keys").write_text(keys.stdout)
    port = free_port()
    image_env = {
        **env,
        "PATH": f"{venv / 'bin'}:{env['PATH']}",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
        "AUTHBRIDGE_DATA_DIR": str(tmp_path / "data"),
        "AUTHBRIDGE_PORT": str(port),
        "AUTHBRIDGE_ENCRYPTION_KEYS_FILE": str(tmp_path / "encryption_keys"),
    }
    (start,) = _args(final, "CMD")
    log = tmp_path / "server.log"
    with log.open("wb") as err:
        process = subprocess.Popen(json.loads(start), env=image_env, cwd=tmp_path, stderr=err)
        try:
            deadline = time.monotonic() + 60
            ready = None
            while time.monotonic() < deadline and process.poll() is None:
                try:
                    ready = httpx.get(f"http://127.0.0.1:{port}/ready", timeout=5)
                    break
                except httpx.TransportError:
                    time.sleep(0.2)
            assert ready is not None, log.read_text()
            assert ready.status_code == 200, ready.text
            assert ready.json()["checks"] == {"shutdown": "no", "database": "ok", "migrations": "ok", "keys": "ok"}
            (healthcheck,) = _args(final, "HEALTHCHECK")
            probe = json.loads(healthcheck.partition(" CMD ")[2])
            assert subprocess.run(probe, env=image_env, cwd=tmp_path).returncode == 0
            assert not (tmp_path / "data" / "master.key").exists()  # the key came from the secret file
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(30)


def test_settings_read_secrets_from_files(tmp_path: Path) -> None:
    """*_FILE names a file holding the value; both at once, an unreadable or an empty file are refused."""
    from authbridge.config import Settings
    from authbridge.errors import ConfigError

    keys = tmp_path / "keys"
    keys.write_text("k1:" + "A" * 43 + "=\n")
    url = tmp_path / "url"
    url.write_text("postgresql://ab:s3cret@db/ab\n")
    settings = Settings.from_env(
        {"AUTHBRIDGE_ENCRYPTION_KEYS_FILE": str(keys), "AUTHBRIDGE_DATABASE_URL_FILE": str(url)}
    )
    assert settings.encryption_keys == "k1:" + "A" * 43 + "="
    assert settings.database_url == "postgresql+asyncpg://ab:s3cret@db/ab"
    both = {"AUTHBRIDGE_ENCRYPTION_KEYS": "k1:x", "AUTHBRIDGE_ENCRYPTION_KEYS_FILE": str(keys)}
    with pytest.raises(ConfigError, match="AUTHBRIDGE_ENCRYPTION_KEYS and AUTHBRIDGE_ENCRYPTION_KEYS_FILE are both"):
        Settings.from_env(both)
    with pytest.raises(ConfigError, match=r"AUTHBRIDGE_DATABASE_URL_FILE names .* cannot be read"):
        Settings.from_env({"AUTHBRIDGE_DATABASE_URL_FILE": str(tmp_path / "missing")})
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(ConfigError, match=r"AUTHBRIDGE_ENCRYPTION_KEYS_FILE names .* which is empty") as caught:
        Settings.from_env({"AUTHBRIDGE_ENCRYPTION_KEYS_FILE": str(tmp_path / "empty")})
    assert "s3cret" not in str(caught.value)
