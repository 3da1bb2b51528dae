"""The demo's NSS entries on its login node (devstack/nss.py): what `up` adds to nsswitch.conf and extrausers,
`demo-down` takes out again, byte for byte, and nothing of anyone else's is touched. On copies of the files:
the real ones are the machine's (the demo test checks the real lookup)."""

from __future__ import annotations

from pathlib import Path

from devstack.directory import DEMO_USERS
from devstack.nss import disable_extrausers, enable_extrausers

DEBIAN = """\
# /etc/nsswitch.conf
#
passwd:         files systemd
group:          files systemd
shadow:         files systemd
gshadow:        files systemd

hosts:          files dns
"""


def setup(tmp_path: Path, text: str = DEBIAN) -> tuple[Path, Path]:
    nsswitch = tmp_path / "nsswitch.conf"
    nsswitch.write_text(text)
    return nsswitch, tmp_path / "extrausers"


def test_up_adds_extrausers_to_passwd_and_group_only_and_down_restores_the_file_exactly(tmp_path):
    nsswitch, folder = setup(tmp_path)
    enable_extrausers(DEMO_USERS, "/home", nsswitch=nsswitch, folder=folder, check_module=False)
    lines = nsswitch.read_text().splitlines()
    assert [line.split("#")[0].split() for line in lines if line.startswith(("passwd", "group"))] == [
        ["passwd:", "files", "systemd", "extrausers"], ["group:", "files", "systemd", "extrausers"]]
    assert "shadow:         files systemd" in lines and "hosts:          files dns" in lines
    # twice (a re-run of `up`) adds nothing
    enable_extrausers(DEMO_USERS, "/home", nsswitch=nsswitch, folder=folder, check_module=False)
    assert nsswitch.read_text().count("extrausers") == 2
    disable_extrausers(nsswitch=nsswitch, folder=folder)
    assert nsswitch.read_text() == DEBIAN
    assert sorted(p.name for p in folder.iterdir()) == []


def test_the_users_have_their_directory_names_homes_and_group(tmp_path):
    nsswitch, folder = setup(tmp_path)
    enable_extrausers(DEMO_USERS, "/home", nsswitch=nsswitch, folder=folder, check_module=False)
    passwd = (folder / "passwd").read_text().splitlines()
    assert "alice:x:10001:10000:Alice Student:/home/alice:/bin/bash" in passwd
    assert "heidi:x:10005:10000:Heidi Admin:/home/heidi:/bin/bash" in passwd
    assert len(passwd) == len(DEMO_USERS)
    assert (folder / "group").read_text() == "condorhub:x:10000:alice,bob,carol,dave,heidi\n"
    assert oct((folder / "passwd").stat().st_mode & 0o777) == "0o644"


def test_a_site_s_own_extrausers_and_nsswitch_lines_stay_as_they_are(tmp_path):
    own = DEBIAN.replace("passwd:         files systemd", "passwd:         files extrausers")
    nsswitch, folder = setup(tmp_path, own)
    folder.mkdir()
    (folder / "passwd").write_text("zoe:x:20000:20000::/home/zoe:/bin/sh\n")
    message = enable_extrausers(DEMO_USERS, "/home", nsswitch=nsswitch, folder=folder, check_module=False)
    assert "someone else's users" in message
    assert (folder / "passwd").read_text() == "zoe:x:20000:20000::/home/zoe:/bin/sh\n"
    disable_extrausers(nsswitch=nsswitch, folder=folder)
    assert nsswitch.read_text() == own and (folder / "passwd").exists()
