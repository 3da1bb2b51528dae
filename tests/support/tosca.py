"""The TOSCA templates and the inputs both TOSCA test modules deploy them with (tosca-parser offline in
test_tosca_templates, a real Infrastructure Manager in test_tosca_im)."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TOSCA = REPO / "tosca"

CLUSTER_INPUTS = {
    "ldap_url": "ldap://ldap.physik.example.org",
    "ldap_base": "dc=physik,dc=example,dc=org",
    "domain": "physik.example.org",
    "condor_signing_key": "a-long-enough-signing-key",
    "num_workers": 3,
    "gpus_per_worker": 2,
    "admin_users": ["opsadmin"],
}
ALL_IN_ONE_INPUTS = {"ldap_admin_password": "a-good-admin-pw", "condor_signing_key": "a-long-enough-signing-key"}
