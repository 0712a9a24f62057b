"""Real Chromium (Debian's /usr/bin/chromium) driven by Playwright against pytest-django's live server.

Each test gets a fresh browser profile (user-data directory) and the demo data made by the real
`sync_playbooks` and `seed_demo` commands. Screenshots go to var/screenshots/ (git-ignored): look at
them, a page that works but looks broken is not done.
"""

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connections
from playwright.sync_api import BrowserContext, Page, sync_playwright

CHROMIUM = os.environ.get("WATCHPOST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(settings.BASE_DIR) / "var" / "screenshots"
DEMO_PASSWORD = "e2e-demo-password-not-secret"  # noqa: S105 - a throwaway login for the live test server

# Playwright's sync API runs an event loop in this thread; the test's own ORM calls are plain sync code.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture
def demo(live_server, role_groups, settings, tmp_path: Path, monkeypatch) -> str:
    """Playbooks and demo incidents through the real commands; returns the live server's URL."""
    settings.MEDIA_ROOT = tmp_path / "media"
    monkeypatch.setenv("WATCHPOST_DEMO_PASSWORD", DEMO_PASSWORD)
    call_command("sync_playbooks", verbosity=0)
    call_command("seed_demo", "--force", verbosity=0)
    connections.close_all()  # the test body runs inside Playwright's event loop, with its own connection
    return live_server.url


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[BrowserContext]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (make test installs it).")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    profile = tmp_path / "chromium-profile"
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_FLAGS,
            accept_downloads=True,
            viewport={"width": 1280, "height": 900},
        )
        context.set_default_timeout(15_000)
        try:
            yield context
        finally:
            context.close()
            # Playwright's sync API runs an event loop here, and Django keeps a separate connection per
            # async context: close what the test opened, or the test database cannot be dropped.
            connections.close_all()
    shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def page(browser: BrowserContext) -> Page:
    page = browser.pages[0] if browser.pages else browser.new_page()
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.console_errors = errors  # type: ignore[attr-defined]
    return page


def shot(page: Page, name: str) -> Path:
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def login(page: Page, base: str, username: str) -> None:
    page.goto(f"{base}/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", DEMO_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_load_state()
