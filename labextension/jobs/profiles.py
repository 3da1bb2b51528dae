"""The HTCondor profiles this user may submit with, as the hub hands them to the server.

The hub puts them into the server's environment (``CONDORHUB_JOB_PROFILES``, a JSON list in the site file's
order) with the scan limit (``CONDORHUB_SCAN_MAX_POINTS``). The list is only what the dialog offers and what
the API accepts; the pool enforces the role's limits again at submit, since a user with a credential can
write any submit description in a terminal.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass

PROFILES_ENV = "CONDORHUB_JOB_PROFILES"
MAX_POINTS_ENV = "CONDORHUB_SCAN_MAX_POINTS"
#: Most combinations of one scan when the hub names no limit.
DEFAULT_MAX_POINTS = 1000


class ProfilesError(ValueError):
    """The hub's profile list cannot be read; the server then offers no profiles (and says why)."""


@dataclass(frozen=True)
class Profile:
    slug: str
    display_name: str = ""
    description: str = ""
    cpus: int = 1
    memory_mb: int = 0
    gpus: int = 0
    runtime_seconds: int | None = None
    gpus_minimum_capability: float | None = None
    gpus_minimum_memory_mb: int | None = None

    def to_json(self) -> dict:
        return asdict(self)


def _int(entry: Mapping, key: str, default: int | None) -> int | None:
    value = entry.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ProfilesError(f"profile {entry.get('slug')!r}: {key} must be a whole number >= 0, not {value!r}")
    return value


def parse_profiles(text: str | None) -> list[Profile]:
    """``CONDORHUB_JOB_PROFILES`` → profiles; unset or empty → none. Unknown keys are ignored (a newer hub
    may send more than this server knows)."""
    if not text or not text.strip():
        return []
    try:
        entries = json.loads(text)
    except ValueError as err:
        raise ProfilesError(f"{PROFILES_ENV} is not JSON: {err}") from None
    if not isinstance(entries, list):
        raise ProfilesError(f"{PROFILES_ENV} must be a JSON list of profiles")
    profiles: list[Profile] = []
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("slug"), str) or not entry["slug"]:
            raise ProfilesError(f"{PROFILES_ENV}: every profile needs a slug, not {entry!r}")
        capability = entry.get("gpus_minimum_capability")
        if capability is not None and (isinstance(capability, bool) or not isinstance(capability, (int, float))):
            raise ProfilesError(f"profile {entry['slug']!r}: gpus_minimum_capability must be a number")
        profiles.append(
            Profile(
                slug=entry["slug"],
                display_name=str(entry.get("display_name") or entry["slug"]),
                description=str(entry.get("description") or ""),
                cpus=_int(entry, "cpus", 1) or 1,
                memory_mb=_int(entry, "memory_mb", 0) or 0,
                gpus=_int(entry, "gpus", 0) or 0,
                runtime_seconds=_int(entry, "runtime_seconds", None),
                gpus_minimum_capability=float(capability) if capability is not None else None,
                gpus_minimum_memory_mb=_int(entry, "gpus_minimum_memory_mb", None),
            )
        )
    return profiles


def parse_max_points(text: str | None) -> int:
    if text is None or not text.strip():
        return DEFAULT_MAX_POINTS
    try:
        value = int(text)
    except ValueError:
        raise ProfilesError(f"{MAX_POINTS_ENV} must be a whole number, not {text!r}") from None
    if value < 1:
        raise ProfilesError(f"{MAX_POINTS_ENV} must be at least 1, not {value}")
    return value


def from_environment(environ: Mapping[str, str] = os.environ) -> tuple[list[Profile], int]:
    """The profiles and the scan limit the hub gave this server."""
    return parse_profiles(environ.get(PROFILES_ENV)), parse_max_points(environ.get(MAX_POINTS_ENV))
