"""``ldap_ssha`` filter: an OpenLDAP ``{SSHA}`` password hash, computed on the controller.

Ansible's own ``password_hash`` needs passlib on the controller; this needs nothing. The salt is derived
from ``seed`` (the role passes the user's DN), so re-running the role renders the same hash and reports no
change, while two users with the same password still get different hashes.
"""

from __future__ import annotations

import base64
import hashlib


def ldap_ssha(password: str, seed: str) -> str:
    salt = hashlib.sha256(f"condorhub-ssha:{seed}".encode()).digest()[:8]
    digest = hashlib.sha1(str(password).encode() + salt).digest()
    return "{SSHA}" + base64.b64encode(digest + salt).decode()


class FilterModule:
    def filters(self):
        return {"ldap_ssha": ldap_ssha}
