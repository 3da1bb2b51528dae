"""A class logging in at once (condorhub.spawner.condor.usermap.UserMapWriter): every student's first login
changes the pool's user map, and the hub must not run one schedd reconfig per student in a row (50 logins in 10 s:
the last waited 13.8 s, benchmarks/class_scale.py). Writers that arrive while a reconfig runs share the next one;
each still returns only once the schedd has read a map with their lines, or with the reconfig's error.

Pure logic: the 'reconfig' is a small program that reads the map as the schedd would, at its start, records what
it read, and takes 0.3 s."""

from __future__ import annotations

import os
import sys
import threading

import pytest

from condorhub.schema import DEFAULT_MAX_JOBS_PER_USER, CondorProfile
from condorhub.spawner.condor.usermap import UserMapError, UserMapWriter, limits_for, parse

PROFILES = [CondorProfile(slug="gpu-1", display_name="1 GPU", roles=["student"], runtime="8h", gpus=1)]
STUDENT = limits_for(["student"], PROFILES, {"student": "group_students"}, {}, DEFAULT_MAX_JOBS_PER_USER)

# the schedd's side: read the map now, note who is in it (one line per reconfig), then be slow
READER = """
import sys, time
names = sorted({line.split()[1] for line in open(sys.argv[1]) if line.strip() and not line.startswith("#")})
with open(sys.argv[2], "a") as log:
    log.write(" ".join(names) + "\\n")
time.sleep(0.3)
"""


@pytest.fixture
def map_file(tmp_path):
    path = tmp_path / "pool-users.map"
    path.write_text("")
    os.chmod(path, 0o640)
    return path


def _burst(writer: UserMapWriter, names: list[str]) -> dict[str, object]:
    """All ``names`` log in at the same moment; what each update returned (or raised)."""
    results: dict[str, object] = {}
    start = threading.Barrier(len(names))

    def login(name: str) -> None:
        start.wait()
        try:
            results[name] = writer.update(name, STUDENT)
        except UserMapError as exc:
            results[name] = exc

    threads = [threading.Thread(target=login, args=(n,)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return results


def test_a_class_logging_in_at_once_shares_reconfigs_and_each_login_waits_for_its_own_lines(map_file, tmp_path):
    seen = tmp_path / "schedd-read"
    writer = UserMapWriter(map_file, [sys.executable, "-c", READER, str(map_file), str(seen)])
    names = [f"student{i:02d}" for i in range(24)]
    returned_after: dict[str, list[str]] = {}
    original = writer.update

    def update_and_look(name, limits):
        changed = original(name, limits)
        returned_after[name] = seen.read_text().splitlines()  # what the schedd had read when the login went on
        return changed

    writer.update = update_and_look  # type: ignore[method-assign]
    results = _burst(writer, names)
    assert results == dict.fromkeys(names, True)
    assert set(parse(map_file.read_text())) == set(names)
    for name in names:
        assert any(name in read.split() for read in returned_after[name]), f"{name} went on before the schedd knew"
    reads = seen.read_text().splitlines()
    # one reconfig per student would be 24 of 0.3 s each in a row (7 s for the last login)
    assert len(reads) <= 6, reads


def test_a_failing_reconfig_fails_every_login_it_was_to_cover(map_file, tmp_path):
    writer = UserMapWriter(map_file, [sys.executable, "-c", "import sys, time; time.sleep(0.2); sys.exit('schedd down')"])
    results = _burst(writer, [f"student{i:02d}" for i in range(8)])
    assert all(isinstance(r, UserMapError) and "schedd down" in str(r) for r in results.values()), results


def test_the_hubs_logins_share_reconfigs_without_a_thread_each(map_file, tmp_path):
    """The hub's path (update_async, on its event loop): a burst of 24 first logins needs two or three
    reconfigs, not one per student nor one per executor thread, and each login goes on only once the schedd
    has read its lines."""
    import asyncio

    seen = tmp_path / "schedd-read"
    writer = UserMapWriter(map_file, [sys.executable, "-c", READER, str(map_file), str(seen)])
    names = [f"student{i:02d}" for i in range(24)]

    async def login(name: str) -> list[str]:
        assert await writer.update_async(name, STUDENT) is True
        return seen.read_text().splitlines()

    async def burst():
        return await asyncio.gather(*(login(n) for n in names))

    after = dict(zip(names, asyncio.run(burst())))
    for name in names:
        assert any(name in read.split() for read in after[name]), f"{name} went on before the schedd knew"
    reads = seen.read_text().splitlines()
    assert len(reads) <= 3, reads
    # the same logins again change nothing: no reconfig at all
    assert asyncio.run(writer.update_async(names[0], STUDENT)) is False
    assert seen.read_text().splitlines() == reads
