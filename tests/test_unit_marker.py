"""The `unit` marker's file list (tests/support/markers.py) stays true to its name."""

from tests.support.markers import TESTS, UNIT_TEST_FILES


def test_every_listed_unit_test_file_exists():
    missing = sorted(name for name in UNIT_TEST_FILES if not (TESTS / name).is_file())
    assert not missing, f"tests/support/markers.py lists files that do not exist (moved or renamed?): {missing}"


def test_no_unit_test_file_uses_a_component_fixture_or_marker():
    # The components the suite starts for real; a unit test file must not need any of them.
    heavy = (
        "slapd",
        "condor_pool",
        "browser_session",
        "jp_fetch",
        "ansible_base_root",
        "pytest.mark.ldap",
        "pytest.mark.e2e",
        "pytest.mark.condor",
        "pytest.mark.browser",
        "pytest.mark.ansible",
        "pytest.mark.tosca",
        "tests.support.hub",
        "import tensorflow",
    )
    offenders = {name: [h for h in heavy if h in (TESTS / name).read_text()] for name in UNIT_TEST_FILES}
    offenders = {name: found for name, found in offenders.items() if found and name != "test_unit_marker.py"}
    assert not offenders, f"unit test files that start a real component: {offenders}"
