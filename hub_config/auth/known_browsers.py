"""Browsers a user has logged in from before: exempt from the per-address login throttle for that user.

The per-address throttle stops one machine from guessing passwords across many usernames. But the
address it counts may be a whole lecture hall behind one NAT address: after enough *real* typos
there (50 by default within 15 minutes, easily reached by 300 students at 9:00), every student at
that address would have to wait, with the right password too. So, as in OWASP's "device cookie"
scheme, a successful login leaves a signed cookie in the browser naming (a hash of) the user; an
attempt for that user from that browser is not held back by its address, only by the username's own
throttle. A guesser has no such cookie for the accounts it attacks (the cookie is signed with the
hub's cookie secret and bound to the user), so it is still slowed down by address.

The cookie is signed, not encrypted, hence it holds a hash of the username: a shared lab computer
does not show in plain text who logged in on it. It is HttpOnly, Secure behind HTTPS, limited to the
hub's own path, and holds at most :data:`MAX_USERS` users (the most recent).
"""

from __future__ import annotations

import hashlib
import json

__all__ = ["COOKIE_NAME", "MAX_USERS", "is_known", "remember"]

COOKIE_NAME = "condorhub-known-login"
MAX_USERS = 8


def _tag(username: str) -> str:
    return hashlib.sha256(username.encode("utf-8")).hexdigest()[:24]


def _tags(handler, max_age_days: float) -> list[str]:
    get = getattr(handler, "get_secure_cookie", None)
    if get is None or max_age_days <= 0:
        return []
    try:
        raw = get(COOKIE_NAME, max_age_days=max_age_days)
        tags = json.loads(raw) if raw else []
    except Exception:  # noqa: BLE001 - a bad or forged cookie is simply not a known browser
        return []
    return [t for t in tags if isinstance(t, str)][:MAX_USERS] if isinstance(tags, list) else []


def is_known(handler, username: str, max_age_days: float) -> bool:
    """Whether this request's browser logged in as ``username`` within ``max_age_days``."""
    return _tag(username) in _tags(handler, max_age_days)


def remember(handler, username: str, max_age_days: float) -> None:
    """Mark this browser as one ``username`` logged in from (most recent first); no-op when disabled."""
    if max_age_days <= 0 or not hasattr(handler, "set_secure_cookie"):
        return
    tag = _tag(username)
    tags = [tag] + [t for t in _tags(handler, max_age_days) if t != tag]
    value = json.dumps(tags[:MAX_USERS])
    hub = getattr(handler, "hub", None)
    path = getattr(hub, "base_url", None) or "/"
    set_cookie = getattr(handler, "_set_cookie", None)  # JupyterHub's: HttpOnly, Secure behind HTTPS, cookie_options
    if set_cookie is not None:
        set_cookie(COOKIE_NAME, value, encrypted=True, path=path, expires_days=max_age_days)
    else:
        handler.set_secure_cookie(COOKIE_NAME, value, path=path, expires_days=max_age_days, httponly=True)
