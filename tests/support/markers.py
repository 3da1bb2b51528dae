"""The `unit` marker, given by file in one place (loaded with `-p tests.support.markers`, pyproject addopts).

Unit tests are pure logic: no root, no slapd, HTCondor pool, hub, proxy, browser or TensorFlow; the whole set
runs in seconds (`./setup.sh test -m unit`, or `python -m pytest -m unit`). A file belongs here only if every
test in it is such a test; tests/test_unit_marker.py checks the list names real files.
"""

from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent.parent

UNIT_TEST_FILES = frozenset(
    {
        "test_assignments_units.py",
        "test_client_address.py",
        "test_code_style.py",
        "test_condor_config.py",
        "test_condor_queue.py",
        "test_demo_nss.py",
        "test_course_page_units.py",
        "test_culling_units.py",
        "test_course_publish_units.py",
        "test_docs_reference.py",
        "test_hub_database.py",
        "test_known_browsers.py",
        "test_lab_jobs_units.py",
        "test_metrics_units.py",
        "test_profile_choice.py",
        "test_pool_status.py",
        "test_scan_pattern_syntax.py",
        "test_server_status.py",
        "test_site_config.py",
        "test_state_disk_units.py",
        "test_throttle.py",
        "test_unit_marker.py",
        "test_usermap.py",
        "test_usermap_burst.py",
        "test_version.py",
        "data_tests/test_data_buffers.py",
        "data_tests/test_data_errors.py",
        "data_tests/test_data_mixing.py",
        "data_tests/test_data_padding.py",
        "data_tests/test_data_reader.py",
        "data_tests/test_data_specs.py",
    }
)


def pytest_collection_modifyitems(items):
    for item in items:
        path = Path(str(item.path))
        if path.is_relative_to(TESTS) and path.relative_to(TESTS).as_posix() in UNIT_TEST_FILES:
            item.add_marker(pytest.mark.unit)
