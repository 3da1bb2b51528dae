"""Authentication for condorhub: LDAP login with group → role mapping and failed-login throttling.

``c.JupyterHub.authenticator_class = "condorhub.auth.CondorhubLDAPAuthenticator"``
"""

from condorhub.auth.ldap import ROLES, CondorhubLDAPAuthenticator
from condorhub.auth.throttle import FailedLoginThrottle

__all__ = ["ROLES", "CondorhubLDAPAuthenticator", "FailedLoginThrottle"]
