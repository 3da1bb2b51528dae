"""The known-browser cookie (condorhub.auth.known_browsers): pure logic, with tornado's real cookie signing.

The real thing, through the hub and configurable-http-proxy, is in test_e2e_login_throttle.py
(test_a_lecture_halls_own_typos_do_not_hold_back_students_who_logged_in_there_before).
"""

import json

from tornado.web import create_signed_value, decode_signed_value

from condorhub.auth.known_browsers import COOKIE_NAME, MAX_USERS, is_known, remember

SECRET = b"0123456789abcdef" * 4


class Browser:
    """What known_browsers uses of a tornado RequestHandler: signed cookies (one browser's jar)."""

    def __init__(self):
        self.jar: dict[str, bytes] = {}
        self.options: dict = {}

    def set_secure_cookie(self, name, value, **options):
        self.jar[name] = create_signed_value(SECRET, name, value)
        self.options = options

    def get_secure_cookie(self, name, max_age_days=31):
        return decode_signed_value(SECRET, name, self.jar.get(name), max_age_days=max_age_days)


def test_a_browser_is_known_for_the_users_who_logged_in_from_it_only():
    browser = Browser()
    assert not is_known(browser, "alice", 30)
    remember(browser, "alice", 30)
    remember(browser, "bob", 30)
    assert is_known(browser, "alice", 30) and is_known(browser, "bob", 30)
    assert not is_known(browser, "carol", 30)
    assert not is_known(Browser(), "alice", 30)
    assert browser.options["httponly"] is True and browser.options["expires_days"] == 30


def test_the_cookie_holds_no_username_in_clear_text_and_at_most_a_few_users():
    browser = Browser()
    for i in range(MAX_USERS + 3):
        remember(browser, f"user{i}", 30)
    assert b"user" not in browser.jar[COOKIE_NAME]
    assert len(json.loads(browser.get_secure_cookie(COOKIE_NAME))) == MAX_USERS
    assert is_known(browser, f"user{MAX_USERS + 2}", 30)  # the most recent stay
    assert not is_known(browser, "user0", 30)


def test_an_unsigned_or_garbled_cookie_is_not_a_known_browser():
    browser = Browser()
    remember(browser, "alice", 30)
    browser.jar[COOKIE_NAME] = browser.jar[COOKIE_NAME].replace(b"|", b"|x", 1)
    assert not is_known(browser, "alice", 30)
    browser.jar[COOKIE_NAME] = b'["deadbeef"]'
    assert not is_known(browser, "alice", 30)


def test_zero_days_turns_it_off():
    browser = Browser()
    remember(browser, "alice", 0)
    assert browser.jar == {}
    remember(browser, "alice", 30)
    assert not is_known(browser, "alice", 0)
