"""Which resource profiles a person may start, and turning a (possibly crafted) request into one of them.

Pure functions over the schema's profile objects, so the rules are unit-tested without a hub. The form only *shows* the
allowed profiles; everything a browser or API client sends is checked again here, because a POST can name
any profile or add any field.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from tornado import web

from condorhub.schema import CondorProfile, LoginNodeProfile, format_memory

AnyProfile = LoginNodeProfile | CondorProfile


class ProfileChoiceError(web.HTTPError):
    """A refused choice; the message is shown to the user on the spawn form."""

    def __init__(self, status: int, message: str):
        super().__init__(status, log_message=message)
        # JupyterHub shows `jupyterhub_message` on the spawn form and the spawn-pending page.
        self.jupyterhub_message = message


def allowed_profiles(profiles: Sequence[AnyProfile], roles: Iterable[str]) -> list[AnyProfile]:
    """The profiles any of ``roles`` may start, in site-file order."""
    have = set(roles)
    return [p for p in profiles if have.intersection(p.roles)]


def choose_profile(profiles: Sequence[AnyProfile], roles: Iterable[str], user_options: Mapping | None) -> AnyProfile:
    """The profile ``user_options`` asks for, if this person may start it.

    ``user_options`` is ``{"profile": slug}`` from the form or the REST API; an empty request means the
    first allowed profile (what a plain "Start My Server" click sends). Anything else is refused.
    """
    roles = sorted(set(roles))
    options = dict(user_options or {})
    mine = allowed_profiles(profiles, roles)
    if not mine:
        raise ProfileChoiceError(
            403,
            f"Your role(s) ({', '.join(roles) or 'none'}) may not start any server profile; ask your instructor "
            "or the hub admins.",
        )
    unknown = sorted(set(options) - {"profile"})
    if unknown:
        # Resources come from the profile, never from the request: a crafted `gpus=8` must not pass.
        raise ProfileChoiceError(
            400,
            f"Unsupported option(s) {', '.join(map(repr, unknown))}: choose a profile; its resources are fixed "
            "by the site configuration.",
        )
    slug = options.get("profile")
    if slug is None:
        return mine[0]
    if not isinstance(slug, str):
        raise ProfileChoiceError(400, f"The profile must be given as a name, not {type(slug).__name__}.")
    by_slug = {p.slug: p for p in profiles}
    if slug not in by_slug:
        names = ", ".join(p.slug for p in mine)
        raise ProfileChoiceError(400, f"There is no profile {slug!r}. You can choose: {names}.")
    profile = by_slug[slug]
    if profile not in mine:
        raise ProfileChoiceError(
            403,
            f"Profile {slug!r} is not available to your role(s) ({', '.join(roles)}). "
            f"You can choose: {', '.join(p.slug for p in mine)}.",
        )
    return profile


#: Environment variable of every server: the `condor` profiles its user may submit jobs with (JSON).
JOB_PROFILES_ENV = "CONDORHUB_JOB_PROFILES"


def job_profiles(profiles: Sequence[AnyProfile], roles: Iterable[str]) -> list[dict]:
    """The `condor` profiles ``roles`` may use, as the Lab's job submission reads them (HTCondor's units).

    The same profiles and role rules as the spawn form; the pool enforces the limits again on every job.
    """
    from condorhub.spawner.condor.jobs import Request

    out = []
    for profile in allowed_profiles(profiles, roles):
        if not isinstance(profile, CondorProfile):
            continue
        request = Request.from_profile(profile)
        out.append(
            {
                "slug": profile.slug,
                "display_name": profile.display_name,
                "description": profile.description,
                "cpus": request.cpus,
                "memory_mb": request.memory_mb,
                "gpus": request.gpus,
                "runtime_seconds": request.runtime_seconds,
                "gpus_minimum_capability": request.gpu_min_capability,
                "gpus_minimum_memory_mb": request.gpu_min_memory_mb,
            }
        )
    return out


def options_from_form(formdata: Mapping[str, list[str]]) -> dict:
    """Form fields → user_options; every field is kept so that `choose_profile` can refuse extras."""
    options: dict = {}
    for key, values in formdata.items():
        if key == "_xsrf":
            continue
        if len(values) != 1:
            raise ProfileChoiceError(400, f"Form field {key!r} must be given exactly once.")
        options[key] = values[0]
    return options


def format_duration(seconds: float) -> str:
    """``28800`` → ``"8 h"``, ``5400`` → ``"1 h 30 min"``, ``129600`` → ``"1 d 12 h"``: as people write a limit."""
    rest = round(seconds)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if rest >= size:
            parts.append(f"{rest // size} {unit}")
            rest %= size
    if rest or not parts:
        parts.append(f"{rest} s")
    return " ".join(parts)


def profile_summary(profile: AnyProfile) -> str:
    """What a profile gives, in one line: CPUs, memory, GPUs and, for a batch server, its runtime limit."""
    summary = f"{float(profile.cpus):g} CPU, {format_memory(profile.memory)} memory"
    if isinstance(profile, CondorProfile):
        if profile.gpus:
            summary += f", {profile.gpus} GPU{'s' if profile.gpus > 1 else ''}"
        summary += f", runs at most {format_duration(profile.runtime)}"
    return summary


#: What the form says of a batch profile when the pool did not answer in time (the form still works).
POOL_UNKNOWN = "Pool status unknown (the pool did not answer in time); you can still start this server."


@dataclass(frozen=True)
class ProfileLoad:
    """How busy the pool is for one profile, as the form shows it (see condorhub.spawner.condor.pool_status)."""

    message: str
    would_wait: bool = False


def render_form(profiles: Sequence[AnyProfile], load: Mapping[str, ProfileLoad | None] | None = None) -> str:
    """The spawn form: one radio button per allowed profile, the first pre-selected.

    ``load`` maps a batch profile's slug to how busy the pool is for it now (None: the pool did not
    answer); profiles without an entry (login node) show none.
    """
    load = load or {}
    rows = []
    for index, profile in enumerate(profiles):
        slug = html.escape(profile.slug)
        checked = " checked" if index == 0 else ""
        description = f"<br><small>{html.escape(profile.description)}</small>" if profile.description else ""
        busy = ""
        if profile.slug in load:
            entry = load[profile.slug]
            # Bootstrap 5's "-emphasis" colours: readable on the form's white (plain text-warning is not).
            if entry is None:
                css, text = "condorhub-pool-unknown text-body-secondary", POOL_UNKNOWN
            elif entry.would_wait:
                css, text = "condorhub-would-wait text-warning-emphasis", entry.message
            else:
                css, text = "condorhub-free text-success-emphasis", entry.message
            busy = f'<br><small class="condorhub-busy {css}" data-profile="{slug}">{html.escape(text)}</small>'
        rows.append(
            f"""
  <label class="condorhub-profile" for="profile-{slug}" style="display:block;margin:0.5em 0">
    <input type="radio" name="profile" id="profile-{slug}" value="{slug}"{checked}>
    <strong>{html.escape(profile.display_name)}</strong>
    <span class="text-muted">({html.escape(profile_summary(profile))})</span>{description}{busy}
  </label>"""
        )
    return '<fieldset class="condorhub-profiles"><legend>Resource profile</legend>' + "".join(rows) + "\n</fieldset>"


def render_notice(reason: str) -> str:
    """Why the last server stopped (e.g. HTCondor's hold reason), above the profile choice."""
    if not reason:
        return ""
    return (
        '<div class="alert alert-warning condorhub-last-stop" role="alert">'
        f"Your last server stopped: {html.escape(reason)}</div>"
    )
