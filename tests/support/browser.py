"""Debian's Chromium driven by Playwright (no browser download: executablePath /usr/bin/chromium)."""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

CHROMIUM = "/usr/bin/chromium"
# Without the background-networking flags Chromium keeps trying to reach Google's hosts, which this
# machine's closed network refuses; --no-sandbox because the tests run as root.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@contextlib.contextmanager
def chromium_page():
    """A fresh browser profile and page; yields the Playwright page."""
    if not Path(CHROMIUM).exists():
        raise RuntimeError(f"{CHROMIUM} is missing: install Debian's chromium package (setup.sh test does)")
    with tempfile.TemporaryDirectory(prefix="condorhub-chromium-") as profile, sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True, viewport={"width": 1280, "height": 800}
        )
        try:
            page = context.new_page()
            yield page
        finally:
            context.close()


def screenshot(page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path


def login_to_lab(page, hub_url: str, user: str, password: str | None = None, timeout_ms: int = 90_000) -> None:
    """Log in on the hub's page as a person does and wait for the Lab (the server started): its launcher, or
    a tab of the main area, which the Lab restores from the user's last layout (a scan browser, a notebook)."""
    page.goto(f"{hub_url}/hub/login")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", password or f"{user}-pw")
    page.click("input[type=submit], button[type=submit]")
    page.wait_for_url(f"{hub_url}/user/{user}/lab**", timeout=timeout_ms)
    page.wait_for_selector(".jp-Launcher, .jp-LauncherCard, #jp-main-dock-panel .lm-TabBar-tab", timeout=timeout_ms)
