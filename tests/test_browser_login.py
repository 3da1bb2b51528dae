"""In a real browser: alice logs in with her LDAP password and gets JupyterLab (screenshots in test-artifacts/)."""

from __future__ import annotations

import shutil

import pytest

from tests.support.browser import chromium_page, screenshot
from tests.support.hub import Hub, demo_site
from tests.support.scratch import scratch_dir

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.ldap]


@pytest.fixture(scope="module")
def hub(slapd):
    work = scratch_dir("condorhub-browser-hub-")
    hub = Hub(work, demo_site(slapd.uri, slapd.suffix, work / "state")).start()
    yield hub
    hub.stop()
    hub.kill_servers()
    shutil.rmtree(work, ignore_errors=True)


def test_alice_logs_in_with_her_ldap_password_and_gets_jupyterlab(hub):
    with chromium_page() as page:
        page.goto(f"{hub.url}/hub/login")
        page.fill("input[name=username]", "alice")
        page.fill("input[name=password]", "alice-pw")
        screenshot(page, "login-form")
        page.click("input[type=submit], button[type=submit]")
        # The login-node profile is the only one offered, so the Lab starts without a form.
        page.wait_for_url(f"{hub.url}/user/alice/lab**", timeout=90_000)
        page.wait_for_selector("#jp-main-dock-panel, .jp-LabShell", timeout=90_000)
        page.wait_for_selector(".jp-Launcher, .jp-LauncherCard", timeout=60_000)
        # No prompt about Jupyter's news feed or JupyterLab updates in front of a class (settings overrides).
        page.wait_for_timeout(3000)
        assert page.get_by_text("official Jupyter news").count() == 0
        screenshot(page, "alice-lab")
        assert "JupyterLab" in page.title()


def test_a_wrong_password_shows_the_error_on_the_login_page(hub):
    with chromium_page() as page:
        page.goto(f"{hub.url}/hub/login")
        page.fill("input[name=username]", "alice")
        page.fill("input[name=password]", "not-her-password")
        page.click("input[type=submit], button[type=submit]")
        page.wait_for_selector(".login_error", timeout=30_000)
        assert "Invalid username or password" in page.inner_text(".login_error")
        assert page.url.split("?")[0].endswith("/hub/login")
        screenshot(page, "login-wrong-password")
