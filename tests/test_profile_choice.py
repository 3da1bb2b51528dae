"""Which profiles a role may start, and refusing crafted spawn requests (pure logic; the hub path is in e2e)."""

import pytest

from condorhub.spawner.choice import ProfileChoiceError, allowed_profiles, choose_profile, options_from_form, render_form
from condorhub.spawner.profiles import as_profile

# As the spawner gets them: the schema's objects (validated from site-file dicts).
PROFILES = [
    as_profile(p)
    for p in [
        {"kind": "login_node", "slug": "login-node", "display_name": "Login node", "roles": ["student", "researcher", "guest"], "cpus": 1, "memory": "2G"},
        {"kind": "login_node", "slug": "big", "display_name": "Big <b>", "roles": ["researcher"], "cpus": 8, "memory": "32G"},
    ]
]


def test_roles_see_only_their_profiles():
    assert [p.slug for p in allowed_profiles(PROFILES, ["student"])] == ["login-node"]
    assert [p.slug for p in allowed_profiles(PROFILES, ["researcher"])] == ["login-node", "big"]
    assert allowed_profiles(PROFILES, ["instructor"]) == []


def test_plain_start_gets_the_first_allowed_profile():
    assert choose_profile(PROFILES, ["researcher"], {}).slug == "login-node"


def test_another_roles_profile_is_refused_with_what_is_allowed():
    with pytest.raises(ProfileChoiceError) as err:
        choose_profile(PROFILES, ["student"], {"profile": "big"})
    assert err.value.status_code == 403
    assert "not available to your role(s) (student)" in err.value.jupyterhub_message
    assert "login-node" in err.value.jupyterhub_message


@pytest.mark.parametrize(
    "options, fragment",
    [
        ({"profile": "login-node", "gpus": "8"}, "Unsupported option(s) 'gpus'"),
        ({"profile": "login-node", "memory": "-1G"}, "Unsupported option(s) 'memory'"),
        ({"profile": "nope"}, "There is no profile 'nope'"),
        ({"profile": ["big"]}, "must be given as a name"),
    ],
)
def test_crafted_requests_are_refused(options, fragment):
    with pytest.raises(ProfileChoiceError) as err:
        choose_profile(PROFILES, ["researcher"], options)
    assert fragment in err.value.jupyterhub_message
    assert err.value.status_code == 400


def test_no_role_means_no_server():
    with pytest.raises(ProfileChoiceError, match="may not start any server profile"):
        choose_profile(PROFILES, [], {})


def test_form_escapes_names_and_repeated_fields_are_refused():
    html = render_form(allowed_profiles(PROFILES, ["researcher"]))
    assert "Big &lt;b&gt;" in html and "<b>" not in html.replace("<strong>", "")
    assert "(8 CPU, 32G memory)" in html  # the normalised size written back as people write it
    assert options_from_form({"profile": ["big"], "_xsrf": ["t"]}) == {"profile": "big"}
    with pytest.raises(ProfileChoiceError):
        options_from_form({"profile": ["big", "login-node"]})
