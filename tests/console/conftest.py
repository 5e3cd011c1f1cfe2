"""Browser fixtures: a real ``authbridge run`` process and Debian's Chromium driven by Playwright.

Never ``playwright install``: the browser is ``/usr/bin/chromium`` (``apt-get install -y chromium``).
Screenshots go to ``test-artifacts/screenshots/`` (ignored by git).
"""

from __future__ import annotations

import dataclasses
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, Playwright, sync_playwright

REPO_ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO_ROOT / "test-artifacts" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ADMIN_PASSWORD = "correct horse battery staple"


@dataclasses.dataclass(frozen=True)
class ConsoleServer:
    """A running AuthBridge and the credentials to sign in to its console."""

    base_url: str
    api_key: str
    admin_password: str
    env: dict[str, str]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _cli(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "authbridge", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=REPO_ROOT,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@pytest.fixture(scope="module")
def console_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleServer]:
    """``authbridge run`` on a free port and a fresh SQLite data dir, with an API key and an admin password."""
    data = tmp_path_factory.mktemp("console") / "data"
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AUTHBRIDGE_")},
        "AUTHBRIDGE_DATA_DIR": str(data),
        "AUTHBRIDGE_PUBLIC_URL": base_url,
        "AUTHBRIDGE_ALLOW_PRIVATE_NETWORKS": "true",
        "AUTHBRIDGE_BACKGROUND_TASKS": "false",
        "AUTHBRIDGE_LOG_LEVEL": "warning",
        # Every test signs in anew from the same address: keep the sign-in rate limit out of their way.
        "AUTHBRIDGE_SIGN_IN_PER_MINUTE": "1000",
        "AUTHBRIDGE_SIGN_IN_GLOBAL_PER_MINUTE": "1000",
    }
    api_key = _cli(env, "api-keys", "create", "--name", "console-tests")
    _cli(env, "admin", "set-password", "--password-stdin", stdin=ADMIN_PASSWORD + "\n")
    log = data.parent / "server.log"
    with log.open("wb") as err:
        server = subprocess.Popen(
            [sys.executable, "-m", "authbridge", "run", "--port", str(port)], env=env, stderr=err, cwd=REPO_ROOT
        )
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if httpx.get(f"{base_url}/health", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"authbridge run did not start:\n{log.read_text()}")
                time.sleep(0.1)
            yield ConsoleServer(base_url, api_key, ADMIN_PASSWORD, env)
        finally:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    """The Playwright driver (sync API). Module scope: while it runs, this thread counts as running asyncio,
    which ``anyio.run`` (the CLI, other tests) refuses."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (never `playwright install`)")
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    """Debian's Chromium, headless."""
    chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    try:
        yield chromium
    finally:
        chromium.close()


@pytest.fixture
def page(browser: Browser, console_server: ConsoleServer) -> Iterator[Page]:
    """A fresh browser context (no cookies) at 1280 px, its base URL the console server."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, base_url=console_server.base_url)
    context.set_default_timeout(15_000)
    try:
        yield context.new_page()
    finally:
        context.close()


def sign_in(page: Page, secret: str) -> None:
    """Sign in through the form (the way a person would) and land on the integrations page."""
    page.goto("/console/sign-in")
    page.get_by_label("API key or admin password").fill(secret)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Integrations", level=1).wait_for()


@pytest.fixture
def console(page: Page, console_server: ConsoleServer) -> Page:
    """A page signed in with the API key."""
    sign_in(page, console_server.api_key)
    return page


def shot(page: Page, name: str, *, height: int | None = None) -> Path:
    """Save a full-page screenshot (or its top ``height`` pixels) to test-artifacts/screenshots/<name>.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    width = page.viewport_size["width"] if page.viewport_size else 1280
    clip = {"x": 0, "y": 0, "width": width, "height": height} if height else None
    page.screenshot(path=str(path), full_page=True, clip=clip)  # type: ignore[arg-type]
    return path
