"""In a real browser, through JupyterHub: the scan-browser tab comes back after a reload with its folder and
pattern, a JavaScript-style pattern works, and a broken one reads as a sentence (no "(400)").

bob's Lab is the hub's login-node server, as in test_browser_lab_extension.py (screenshots in test-artifacts/).
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from pathlib import Path

import pytest

from devstack.directory import DEMO_USERS
from devstack.samples.scan import make_scan
from tests.support.browser import chromium_page, login_to_lab, screenshot
from tests.support.hub import Hub, demo_site
from tests.support.scratch import scratch_dir

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.ldap]

BOB = next(u for u in DEMO_USERS if u.uid == "bob")
SCAN = ".jp-condorhub-scan:visible"
JS_PATTERN = r"lr_(?<lr>[^/]+)/layers_(?<layers>[^/]+)/seed_1/roc\.png"


@pytest.fixture(scope="module")
def hub(slapd):
    work = scratch_dir("condorhub-browser-scan-")
    hub = Hub(work, demo_site(slapd.uri, slapd.suffix, work / "state")).start()
    yield hub
    hub.stop()
    hub.kill_servers()
    shutil.rmtree(work, ignore_errors=True)


@pytest.fixture
def bob_home(ldap_home_base):
    home = Path(BOB.home_under(str(ldap_home_base)))
    home.mkdir(mode=0o700, exist_ok=True)
    os.chown(home, BOB.uid_number, BOB.gid_number)
    # The Lab restores bob's last layout (his workspace): start from none, and leave none for other tests.
    workspaces = home / ".jupyter" / "lab" / "workspaces"
    shutil.rmtree(workspaces, ignore_errors=True)
    yield home
    shutil.rmtree(workspaces, ignore_errors=True)


def give_to_bob(path: Path) -> None:
    for root, dirs, files in os.walk(path):
        for name in [root, *(os.path.join(root, n) for n in dirs + files)]:
            os.chown(name, BOB.uid_number, BOB.gid_number)


def message(page) -> str:
    return page.locator(f"{SCAN} .jp-condorhub-message").inner_text()


def scan_tabs(page) -> list[str]:
    return [t.strip() for t in page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab", has_text="Scan:").all_inner_texts()]


def wait_grid(page, rows: int, cols: int) -> None:
    page.wait_for_function(
        """([sel, rows, cols]) => {
             const t = document.querySelector(sel + ' .jp-condorhub-grid-table');
             return t && t.querySelectorAll('th.jp-condorhub-rowhead').length === rows
                      && t.querySelectorAll('th.jp-condorhub-colhead').length === cols;
           }""",
        arg=[".jp-condorhub-scan", rows, cols],
        timeout=30_000,
    )


def test_the_scan_tab_comes_back_after_a_reload_with_its_folder_and_pattern(hub, bob_home):
    folder = f"scan-{uuid.uuid4().hex[:6]}"
    make_scan(bob_home / folder)
    give_to_bob(bob_home / folder)
    with chromium_page() as page:
        login_to_lab(page, hub.url, "bob")
        page.wait_for_selector("#filebrowser", state="attached", timeout=30_000)
        if not page.locator("#filebrowser").is_visible():
            page.click(".jp-SideBar .lm-TabBar-tab[data-id='filebrowser']")
        entry = page.locator(".jp-DirListing-item", has=page.locator(".jp-DirListing-itemText", has_text=folder))
        entry.wait_for(timeout=30_000)
        entry.click(button="right")
        page.locator(".lm-Menu-item", has_text="Browse as parameter scan").click()
        page.wait_for_selector(f"{SCAN} .jp-condorhub-grid-table", timeout=30_000)

        # A broken pattern reads as a sentence naming the position typed; no HTTP status in it.
        page.fill(f"{SCAN} .jp-condorhub-pattern", r"lr_(?<lr>[^/]+")
        page.press(f"{SCAN} .jp-condorhub-pattern", "Enter")
        page.wait_for_selector(f"{SCAN} .jp-condorhub-message.jp-condorhub-error", timeout=10_000)
        assert message(page) == (
            "The pattern is not a valid regular expression: missing ), unterminated subpattern at position 3."
        )
        screenshot(page, "scan-browser-pattern-error")

        # JavaScript's named groups, as a browser's regular expressions write them: the same axes.
        page.fill(f"{SCAN} .jp-condorhub-pattern", JS_PATTERN)
        page.press(f"{SCAN} .jp-condorhub-pattern", "Enter")
        wait_grid(page, rows=4, cols=3)
        assert "12 of 72 files match; 12 in the grid" in message(page)

        # Reload: the tab is back, on its folder, with the pattern as typed and its grid.
        time.sleep(2)  # the Lab saves its layout shortly after a change
        for attempt in range(2):  # twice: a restored tab is saved under its own id again, not added twice
            page.reload()
            page.wait_for_selector(f"{SCAN} .jp-condorhub-grid-table", timeout=60_000)
            assert page.input_value(f"{SCAN} .jp-condorhub-folder") == folder
            assert page.input_value(f"{SCAN} .jp-condorhub-pattern") == JS_PATTERN
            wait_grid(page, rows=4, cols=3)
            assert scan_tabs(page) == [f"Scan: {folder}"], scan_tabs(page)
            time.sleep(2)
        screenshot(page, "scan-browser-restored")

        # A closed tab stays closed.
        page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab", has_text="Scan:").locator(
            ".lm-TabBar-tabCloseIcon").click()
        time.sleep(2)
        page.reload()
        page.wait_for_selector(".jp-Launcher, .jp-DirListing", timeout=60_000)
        time.sleep(2)
        assert scan_tabs(page) == []
