"""Loading the site file, and wording its errors so the person editing it can fix them.

pydantic's own messages ("Extra inputs are not permitted") name neither the allowed keys nor a likely
fix; ops read these in a journal at 8 a.m. before a class, so each line here says which key, what value,
and what is allowed.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from .schema import SiteConfig

DEFAULT_SITE_FILE = Path("/etc/condorhub/site.yaml")

#: Keys that were renamed (old key path → new key path, what to do with the value). A site file written for
#: an older condorhub stops the hub with the new name instead of "unknown key" (CHANGELOG.md lists them).
RENAMED_KEYS: dict[str, tuple[str, str]] = {
    "hub.singleuser_env": ("hub.server_venv", "the value keeps its meaning"),
    "hub.start_timeout": ("hub.server_start_timeout", "the value keeps its meaning (seconds, or e.g. 2m)"),
    "htcondor.worker_env": ("htcondor.server_venv", "the value keeps its meaning"),
    "htcondor.startup_timeout": ("htcondor.server_start_timeout", "the value keeps its meaning"),
    "login_throttle.window_seconds": ("login_throttle.window", "the value keeps its meaning (seconds, or e.g. 15m)"),
    "login_throttle.max_delay_seconds": (
        "login_throttle.max_delay",
        "the value keeps its meaning (seconds, or e.g. 1m)",
    ),
    "login_throttle.known_browser_days": (
        "login_throttle.known_browser_lifetime",
        "the value is now a duration: write 30d for 30 days",
    ),
}
SITE_FILE_ENV = "CONDORHUB_SITE_FILE"


class SiteConfigError(Exception):
    """The site file cannot be used. ``str(err)`` is a complete, human-readable explanation."""

    def __init__(self, path: Path | str, problems: list[str]):
        self.path = str(path)
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"site file {self.path} is invalid:\n{lines}")


def site_file_path(explicit: str | os.PathLike | None = None) -> Path:
    """The site file to use: the explicit argument, else $CONDORHUB_SITE_FILE, else /etc/condorhub/site.yaml."""
    return Path(explicit or os.environ.get(SITE_FILE_ENV) or DEFAULT_SITE_FILE)


def load_site_file(path: str | os.PathLike | None = None) -> SiteConfig:
    """Read and validate the site file; raises :class:`SiteConfigError` listing every problem at once."""
    path = site_file_path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise SiteConfigError(
            path, [f"file not found; copy the documented example (condorhub config example > {path}) and edit it"]
        ) from None
    except OSError as err:
        raise SiteConfigError(path, [f"cannot be read: {err.strerror}"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise SiteConfigError(path, [f"is not valid YAML: {err}"]) from None
    return validate_site_data(data, path)


def validate_site_data(data: Any, path: str | os.PathLike[str] = "<site file>") -> SiteConfig:
    path = os.fspath(path)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise SiteConfigError(path, [f"the top level must be a mapping of sections, not {type(data).__name__}"])
    try:
        return SiteConfig.model_validate(data)
    except ValidationError as err:
        raise SiteConfigError(path, [describe_error(e) for e in err.errors()]) from None


def _profile_kinds() -> set[str]:
    """The profile `kind` tags pydantic puts into error locations (not keys the user wrote)."""
    from .schema import PROFILE_KINDS

    return set(PROFILE_KINDS)


def _key_path(loc: tuple) -> str:
    """('profiles', 0, 'login_node', 'cpus') → 'profiles[0].cpus' (the union tag is pydantic's, not the user's)."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in _profile_kinds() or str(part).startswith("function-"):
            continue
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def _model_at(loc: tuple) -> type[BaseModel] | None:
    """The model class that holds the key at ``loc`` (so unknown keys can list the allowed ones)."""
    from . import schema

    model: Any = SiteConfig
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        if part in schema.PROFILE_KINDS:
            model = schema.PROFILE_KINDS[part]
            continue
        field = model.model_fields.get(part) if isinstance(model, type) and issubclass(model, BaseModel) else None
        if field is None:
            return None
        model = _unwrap_model(field.annotation)
        if model is None:
            return None
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _unwrap_model(annotation: Any) -> type[BaseModel] | None:
    from typing import get_args

    from . import schema

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _unwrap_model(arg)
        if found is not None:
            return found
    if annotation is schema.Profile:
        return schema.LoginNodeProfile
    return None


def describe_error(error: Mapping[str, Any]) -> str:
    loc = tuple(error.get("loc", ()))
    key = _key_path(loc)
    value = error.get("input")
    kind = error.get("type", "")
    if kind == "extra_forbidden" and key in RENAMED_KEYS:
        new, value_hint = RENAMED_KEYS[key]
        return f"`{key}` was renamed to `{new}`; rename the key ({value_hint})"
    if kind == "extra_forbidden":
        model = _model_at(loc)
        allowed = sorted(model.model_fields) if model else []
        name = str(loc[-1])
        hint = ""
        close = difflib.get_close_matches(name, allowed, n=1, cutoff=0.6)
        if close:
            hint = f"; did you mean `{_key_path(loc[:-1] + (close[0],))}`?"
        return f"`{key}`: unknown key{hint}. Allowed keys here: {', '.join(allowed)}"
    if kind == "missing":
        return f"`{key}`: required key is missing"
    message = error.get("msg", "invalid").removeprefix("Value error, ")
    if not loc or isinstance(value, dict):
        # A rule about a whole section (e.g. condor profiles need an `htcondor` section): its input is
        # that section, which says nothing the message does not.
        return f"`{key}`: {message}"
    return f"`{key}`: {message} (got {_short(value)})"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
