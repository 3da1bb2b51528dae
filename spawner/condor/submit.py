"""The submit description of a server's job: resources from the profile, identity from the directory,
and nothing secret.

Every pool user can read every job ad (``condor_q -l``), so the description carries no token, cookie or
key: stock CondorSpawner used ``GetEnv = True`` and put the hub's environment, API token included, into
the ad (batchspawner #227). The job's only argument is the path of a file in the user's home that holds
the secrets (see :mod:`.secretfile`); the launcher on the node reads and deletes it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from .jobs import Request

#: Submit commands condorhub sets itself; `extra` (the site's req_options) may not override them,
#: since they decide who the job runs as, what it runs and what ends up in the (public) job ad.
RESERVED = frozenset(
    {
        "executable",
        "arguments",
        "args",
        "environment",
        "env",
        "getenv",
        "universe",
        "initialdir",
        "iwd",
        "+owner",
        "owner",
        "my.owner",
        "accounting_group",
        "accounting_group_user",
        "+accountinggroup",
        "+condorhubhub",
        "+condorhubuser",
        "+condorhubserver",
        "transfer_executable",
        "should_transfer_files",
        "output",
        "error",
    }
)

_SUBMIT_LINE = re.compile(r"^\s*([+A-Za-z_][A-Za-z0-9_.+]*)\s*=\s*(.*?)\s*$")


class SubmitError(ValueError):
    """The site's extra submit commands are unusable; the message names the line."""


def parse_extra(text: str) -> dict[str, str]:
    """``key = value`` lines (the spawner's ``req_options``) → dict; refuses reserved keys."""
    out: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = _SUBMIT_LINE.match(line)
        if not match:
            raise SubmitError(f"req_options line {number} ({line.strip()!r}) is not `command = value`")
        key, value = match.groups()
        if key.lower() in RESERVED or key.lower().startswith("+condorhub"):
            raise SubmitError(
                f"req_options line {number} sets {key!r}, which condorhub sets itself (identity, command, "
                "environment); remove it"
            )
        out[key] = value
    return out


def classad_string(value: str) -> str:
    """A ClassAd string literal."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def condor_arguments(argv: list[str]) -> str:
    """HTCondor's "new" argument syntax: the whole in double quotes, each argument in single quotes."""
    parts = []
    for arg in argv:
        if any(c in arg for c in "\n\r"):
            raise SubmitError("job arguments cannot contain line breaks")
        parts.append("'" + arg.replace("'", "''").replace('"', '""') + "'")
    return '"' + " ".join(parts) + '"'


def resource_commands(request: Request) -> dict[str, str]:
    """The submit commands of what a job asks for: ``request_*``, the GPU constraints and the runtime limit.

    One rendering for every job condorhub writes (servers here, users' jobs from the Lab), so a profile asks
    the pool for the same thing whichever way it is used.
    """
    commands = {"request_cpus": str(request.cpus)}
    if request.memory_mb:
        commands["request_memory"] = f"{request.memory_mb}MB"
    if request.gpus:
        commands["request_gpus"] = str(request.gpus)
        if request.gpu_min_capability is not None:
            commands["gpus_minimum_capability"] = f"{request.gpu_min_capability:g}"
        if request.gpu_min_memory_mb is not None:
            commands["gpus_minimum_memory"] = str(request.gpu_min_memory_mb)
    if request.runtime_seconds:
        # HTCondor puts the job on hold when its run exceeds this (queue time does not count); the hub
        # then shows the hold reason and removes the job.
        commands["allowed_job_duration"] = str(request.runtime_seconds)
    return commands


@dataclass(frozen=True)
class JobSpec:
    """Everything that goes into one server's job."""

    user: str
    server_name: str
    hub_id: str
    home: str
    python: str  # the server environment's interpreter on the execute node
    secret_file: str  # path of the secrets file, the launcher's only argument
    log_stem: str  # ~/.condorhub/<job-name>: .out and .err next to the secrets file
    request: Request = field(default_factory=Request)
    accounting_group: str = ""
    extra: Mapping[str, str] = field(default_factory=dict)


def submit_description(spec: JobSpec) -> dict[str, str]:
    """The submit description (as for ``condor_submit``) of ``spec``'s job."""
    desc: dict[str, str] = {
        "universe": "vanilla",
        "executable": spec.python,
        "transfer_executable": "false",
        # Homes are shared between hub and nodes (NFS): no file transfer, the job starts in the home.
        "should_transfer_files": "NO",
        "initialdir": spec.home,
        "arguments": condor_arguments(["-m", "condorhub.spawner.condor.launcher", spec.secret_file]),
        # Nothing of the hub's environment: the secrets reach the job through the file only.
        "getenv": "false",
        "output": f"{spec.log_stem}.out",
        "error": f"{spec.log_stem}.err",
        "batch_name": f"jupyter-{spec.user}" + (f"-{spec.server_name}" if spec.server_name else ""),
        # The hub is a queue super user: the job belongs to (and runs as) the user, no sudo involved.
        "+Owner": classad_string(spec.user),
        "+CondorhubHub": classad_string(spec.hub_id),
        "+CondorhubUser": classad_string(spec.user),
        "+CondorhubServer": classad_string(spec.server_name),
    }
    desc.update(resource_commands(spec.request))
    if spec.accounting_group:
        desc["accounting_group"] = spec.accounting_group
        desc["accounting_group_user"] = spec.user
    for key, value in spec.extra.items():
        desc[key] = value
    return desc


def describe(desc: Mapping[str, str]) -> str:
    """The description as submit-file text (for logs and error messages)."""
    return "\n".join(f"{k} = {v}" for k, v in desc.items()) + "\nqueue"


__all__ = [
    "JobSpec",
    "SubmitError",
    "classad_string",
    "condor_arguments",
    "describe",
    "parse_extra",
    "resource_commands",
    "submit_description",
]
