"""A Submit or Scan request of the Lab → the HTCondor submit description the user's server submits.

Pure logic, no file system and no HTCondor: the handlers resolve paths first (labextension/paths.py) and
hand in what they found. The same text is shown to the user ("Show submit description", "Save as .sub"),
so it is written as a person would write it and works with ``condor_submit`` as it is.

Every value a user typed ends up inside the submit language, which expands ``$(...)`` macros everywhere
(``$ENV(JUPYTERHUB_API_TOKEN)`` in an argument would copy the server's token into the job ad, which every
pool user can read). So each ``$`` the user wrote becomes ``$(DOLLAR)``, line breaks are refused, and scan
values are restricted to characters that are safe in folder names, item data and command lines.
"""

from __future__ import annotations

import itertools
import json
import re
import shlex
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import PurePosixPath

from condorhub.spawner.condor.jobs import Request as ResourceRequest
from condorhub.spawner.condor.submit import resource_commands as _resource_commands

from .model import scan_pattern
from .profiles import Profile

SUFFIXES = (".py", ".sh", ".ipynb")
#: Parameter names: Python identifiers (papermill sets them as variables; they also become folder names).
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
#: Scan values: safe as a folder name part (``lr_<v>``), an item-data field and a command-line word.
VALUE = re.compile(r"[A-Za-z0-9_.+-]{1,64}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
#: Most parameters of one scan (each is a folder level).
MAX_PARAMETERS = 8


class Refused(ValueError):
    """The request cannot be submitted; the message names the problem and the fix (HTTP 400)."""


# ------------------------------------------------------------------------------------------ values


def submit_text(value: str, what: str) -> str:
    """A user's text as a literal in the submit language: no line breaks, no macro expansion."""
    if _CONTROL.search(value):
        raise Refused(f"{what} contains a line break or control character; put it on one line")
    return value.replace("$", "$(DOLLAR)")


def classad_string(value: str) -> str:
    """A ClassAd string literal (for ``MY.Attr = "..."``), macro-safe."""
    return '"' + submit_text(value, "a value").replace("\\", "\\\\").replace('"', '\\"') + '"'


def condor_arguments(argv: Sequence[str]) -> str:
    """HTCondor's "new" argument syntax: the whole in double quotes, each argument in single quotes.
    (``$(name)`` scan macros inside still expand: callers escape user text with :func:`submit_text`.)"""
    return '"' + " ".join("'" + a.replace("'", "''").replace('"', '""') + "'" for a in argv) + '"'


def environment_value(env: Mapping[str, str]) -> str:
    return '"' + " ".join(f"{k}='{v.replace(chr(39), chr(39) * 2)}'" for k, v in env.items()) + '"'


def parse_arguments(text: object) -> list[str]:
    """The dialog's argument line (shell-like words) → argv."""
    if text is None or text == "":
        return []
    if isinstance(text, list) and all(isinstance(a, str) for a in text):
        words = list(text)
    elif isinstance(text, str):
        submit_text(text.replace("\t", " "), "the arguments")  # a line break would end the submit command
        try:
            words = shlex.split(text)
        except ValueError as err:
            raise Refused(f"the arguments cannot be split into words ({err}): close the quote") from None
    else:
        raise Refused('arguments must be text, e.g. "--epochs 10 data.csv"')
    for word in words:
        submit_text(word, "an argument")
    return words


def parse_parameters(raw: object) -> dict[str, str]:
    """``{"name": "value"}`` (papermill -p for notebooks, ``--name value`` for scripts)."""
    if raw is None or raw == {}:
        return {}
    if not isinstance(raw, dict):
        raise Refused('parameters must be an object of name → value, e.g. {"epochs": "10"}')
    out: dict[str, str] = {}
    for name, value in raw.items():
        check_name(name)
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise Refused(f'parameter {name!r}: give its value as text, e.g. "0.01"')
        submit_text(str(value), f"parameter {name!r}")  # refuses line breaks; escaped when written
        out[name] = str(value)
    return out


def check_name(name: object) -> str:
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise Refused(
            f"{name!r} is not a parameter name: use letters, digits and _ (not first a digit), e.g. lr or n_layers"
        )
    return name


# -------------------------------------------------------------------------------------------- grid


def _decimal(text: str, name: str, spec: str) -> Decimal:
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise Refused(
            f"parameter {name!r}: {spec!r} is not a range; write start:stop or start:stop:step with numbers, "
            "e.g. 1:10:2"
        ) from None
    if not value.is_finite():
        raise Refused(f"parameter {name!r}: {spec!r} is not a range of finite numbers")
    return value


def expand_range(name: str, spec: str, limit: int) -> list[str]:
    """``start:stop[:step]``, stop included when the steps reach it (``1:10:2`` → 1 3 5 7 9, ``0.1:0.3:0.1``
    → 0.1 0.2 0.3, exact in decimal). Refused before expanding when it has more than ``limit`` values."""
    parts = spec.split(":")
    if len(parts) not in (2, 3):
        raise Refused(f"parameter {name!r}: {spec!r} is not a range; write start:stop or start:stop:step, e.g. 1:10:2")
    start, stop = _decimal(parts[0], name, spec), _decimal(parts[1], name, spec)
    step = _decimal(parts[2], name, spec) if len(parts) == 3 else Decimal(1)
    if step == 0 or (stop - start) * step < 0:
        raise Refused(
            f"parameter {name!r}: the range {spec!r} never reaches its end; the step must go from start "
            f"towards stop (e.g. {parts[0]}:{parts[1]}:{'-' if stop < start else ''}1)"
        )
    count = int((stop - start) / step) + 1
    if count > limit:
        raise Refused(
            f"parameter {name!r}: the range {spec!r} has {count} values, more than the {limit} combinations "
            "one scan may have; use a larger step"
        )
    return [format(start + i * step, "f") for i in range(count)]


def parse_values(name: str, raw: object, limit: int) -> list[str]:
    """One parameter's values: a list, or the dialog's text ``0.001, 0.01, 0.1`` / ``1:4`` / ``1, 5:9:2``."""
    items: list[str]
    if isinstance(raw, str):
        items = [item.strip() for item in raw.split(",")]
        if items == [""]:
            items = []
    elif isinstance(raw, list):
        if any(isinstance(item, bool) or not isinstance(item, (int, float, str)) for item in raw):
            raise Refused(f'parameter {name!r}: give its values as text, e.g. "0.001, 0.01"')
        items = [str(item).strip() for item in raw]
    else:
        raise Refused(f'parameter {name!r}: give its values as a list or as text, e.g. "0.001, 0.01, 0.1"')
    values: list[str] = []
    for item in items:
        if item == "":
            raise Refused(f"parameter {name!r}: an empty value (two commas in a row?); remove it")
        values.extend(expand_range(name, item, limit) if ":" in item else [item])
    if not values:
        raise Refused(f"parameter {name!r} has no values; give at least one, e.g. {name}: 0.001, 0.01")
    seen: set[str] = set()
    for value in values:
        if not VALUE.fullmatch(value):
            raise Refused(
                f"parameter {name!r}: {value!r} cannot be a scan value (it names the folder {name}_{value}); "
                "use letters, digits and . _ + - only"
            )
        if value in seen:
            raise Refused(f"parameter {name!r} lists {value} twice; every point needs its own folder")
        seen.add(value)
    return values


@dataclass(frozen=True)
class Grid:
    names: tuple[str, ...]
    values: tuple[tuple[str, ...], ...]  # per name

    @property
    def count(self) -> int:
        n = 1
        for vs in self.values:
            n *= len(vs)
        return n

    def points(self) -> list[dict[str, str]]:
        return [dict(zip(self.names, combo, strict=True)) for combo in itertools.product(*self.values)]

    def pattern(self) -> str:
        """The scan browser's pattern for the point folders (relative to the scan folder)."""
        return scan_pattern(self.names)

    def point_folder(self, point: Mapping[str, str]) -> str:
        return "/".join(f"{n}_{point[n]}" for n in self.names)


def parse_grid(raw: object, limit: int) -> Grid:
    """The scan's parameters → its grid; refused when empty or larger than ``limit`` combinations."""
    if not isinstance(raw, dict) or not raw:
        raise Refused('give the scan\'s parameters and their values, e.g. {"lr": "0.001, 0.01", "layers": "1:4"}')
    if len(raw) > MAX_PARAMETERS:
        raise Refused(f"a scan has at most {MAX_PARAMETERS} parameters; this one has {len(raw)}")
    names, values = [], []
    for name, spec in raw.items():
        names.append(check_name(name))
        values.append(tuple(parse_values(name, spec, limit)))  # each list at most `limit` long
    grid = Grid(tuple(names), tuple(values))
    if grid.count > limit:
        sizes = " × ".join(str(len(vs)) for vs in values)
        raise Refused(
            f"this scan has {grid.count:,} combinations ({sizes}); at most {limit:,} are allowed on this server: "
            "use fewer values"
        )
    return grid


# ------------------------------------------------------------------------------------- the request


@dataclass(frozen=True)
class Request:
    """A Submit (or the Submit part of a Scan), checked but with paths still as the user wrote them."""

    path: str
    profile: str
    arguments: list[str] = field(default_factory=list)
    parameters: dict[str, str] = field(default_factory=dict)
    folder: str = ""
    environment: str = "server"

    @property
    def kind(self) -> str:
        return PurePosixPath(self.path).suffix

    def to_json(self) -> dict:
        return {"path": self.path, "profile": self.profile, "arguments": self.arguments,
                "parameters": self.parameters, "folder": self.folder, "environment": self.environment}  # fmt: skip


def parse_request(body: Mapping) -> Request:
    path = body.get("path")
    if not isinstance(path, str) or not path.strip():
        raise Refused('give the file to run as "path", relative to the Lab\'s root (e.g. "train.py")')
    suffix = PurePosixPath(path).suffix
    if suffix not in SUFFIXES:
        raise Refused(
            f"{path!r} cannot run as a job: only Python scripts (.py), shell scripts (.sh) and notebooks "
            "(.ipynb) can; pick one of those"
        )
    profile = body.get("profile")
    if not isinstance(profile, str) or not profile:
        raise Refused('choose a resource profile ("profile"), e.g. "cpu"')
    folder = body.get("folder") or ""
    if not isinstance(folder, str):
        raise Refused('"folder" must be a folder path relative to the Lab\'s root, e.g. "jobs/train-1"')
    environment = body.get("environment") or "server"
    if environment != "server":
        raise Refused(f'environment {environment!r} is not offered; jobs run in the server\'s own Python ("server")')
    arguments = parse_arguments(body.get("arguments"))
    submit_text(folder, "the folder")
    return Request(
        path=path.strip(),
        profile=profile,
        arguments=[] if suffix == ".ipynb" else arguments,
        parameters=parse_parameters(body.get("parameters")),
        folder=folder.strip(),
        environment=environment,
    )


def choose_profile(slug: str, profiles: Sequence[Profile]) -> Profile:
    for profile in profiles:
        if profile.slug == slug:
            return profile
    if not profiles:
        raise Refused("this server has no HTCondor profiles to submit with")
    raise Refused(f"There is no profile {slug!r}. You can choose: {', '.join(p.slug for p in profiles)}")


def safe_stem(path: str) -> str:
    """The file's name without suffix, made safe for a folder and a batch name."""
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", PurePosixPath(path).stem).strip("._") or "job"
    return stem[:60]


def default_folder(path: str, now: float | None = None) -> str:
    return f"jobs/{safe_stem(path)}-{time.strftime('%Y%m%d-%H%M%S', time.localtime(now))}"


# ------------------------------------------------------------------------------------- description


def resource_commands(profile: Profile) -> dict[str, str]:
    """request_* and allowed_job_duration from a profile: the hub's own rendering for server jobs, so a
    profile asks the pool for the same thing from the spawn form and from the Lab."""
    return _resource_commands(
        ResourceRequest(
            cpus=profile.cpus,
            memory_mb=profile.memory_mb,
            gpus=profile.gpus,
            gpu_min_capability=profile.gpus_minimum_capability,
            gpu_min_memory_mb=profile.gpus_minimum_memory_mb,
            runtime_seconds=profile.runtime_seconds,
        )
    )


@dataclass(frozen=True)
class Description:
    """A submit description: its commands in order, the queue statement and (for a scan) the item data."""

    commands: dict[str, str]
    queue_names: tuple[str, ...] = ()
    items: tuple[dict[str, str], ...] = ()

    @property
    def count(self) -> int:
        return len(self.items) if self.queue_names else 1

    def text(self) -> str:
        lines = [f"{key} = {value}" for key, value in self.commands.items()]
        if not self.queue_names:
            return "\n".join([*lines, "queue"]) + "\n"
        rows = [", ".join(item[n] for n in self.queue_names) for item in self.items]
        return "\n".join([*lines, f"queue {','.join(self.queue_names)} from (", *rows, ")"]) + "\n"


@dataclass(frozen=True)
class Plan:
    """What the handlers resolved: real paths and the relative forms the user sees."""

    request: Request
    profile: Profile
    python: str  # the interpreter jobs run with (the server's own environment)
    script: str  # real path of the file to run
    rel_file: str
    folder: str  # real path of the job (or scan) folder
    rel_folder: str
    home: str
    grid: Grid | None = None
    batch_name: str = ""


def _command(plan: Plan, params: Mapping[str, str]) -> tuple[str, list[str]]:
    """Executable and argv of one job; ``params`` are the parameters (values already submit-safe)."""
    kind = plan.request.kind
    script = submit_text(plan.script, "the file's path")
    if kind == ".ipynb":
        output = safe_stem(plan.rel_file) + ".ipynb"
        argv = ["-m", "papermill", "--log-output", "--no-progress-bar", script, output]
        for name, value in params.items():
            argv += ["-p", name, value]
        return submit_text(plan.python, "the server's Python"), argv
    extra = [w for name, value in params.items() for w in (f"--{name}", value)]
    user_args = [submit_text(a, "an argument") for a in plan.request.arguments]
    if kind == ".sh":
        return script, [*user_args, *extra]
    return submit_text(plan.python, "the server's Python"), [script, *user_args, *extra]


def build(plan: Plan) -> Description:
    """The submit description of a job or (``plan.grid``) of a scan: one cluster, one job per point."""
    req = plan.request
    grid = plan.grid
    params = {name: submit_text(value, f"parameter {name!r}") for name, value in req.parameters.items()}
    folder = submit_text(plan.folder, "the folder")
    initialdir = folder
    if grid:
        params.update({n: f"$({n})" for n in grid.names})
        initialdir = folder + "/" + "/".join(f"{n}_$({n})" for n in grid.names)
    executable, argv = _command(plan, params)
    bindir = str(PurePosixPath(plan.python).parent)
    commands: dict[str, str] = {
        "universe": "vanilla",
        "executable": executable,
        "arguments": condor_arguments(argv),
        # Shared homes: the job reads its file and writes its output in place.
        "transfer_executable": "false",
        "should_transfer_files": "NO",
        "initialdir": initialdir,
        "output": "job.out",
        "error": "job.err",
        "log": "job.log",
        # Not the server's environment: it holds the hub's API token, and the job ad is public. Only what
        # a job needs: its Python first on PATH (a .sh calling `python` gets the server's environment),
        # unbuffered output (the Lab shows it live), HOME (kernels and tools keep files there).
        "getenv": "false",
        "environment": environment_value(
            {
                "PATH": f"{bindir}:/usr/local/bin:/usr/bin:/bin",
                "PYTHONUNBUFFERED": "1",
                "HOME": submit_text(plan.home, "the home folder"),
            }
        ),
        **resource_commands(plan.profile),
        "batch_name": plan.batch_name or (safe_stem(req.path) + ("-scan" if grid else "")),
        # Public attributes (every pool user can read them): what the Lab's Jobs panel shows and needs to
        # resubmit; no secrets.
        "MY.CondorhubJob": "true",
        "MY.CondorhubFile": classad_string(plan.rel_file),
        "MY.CondorhubFolder": classad_string(plan.rel_folder),
        "MY.CondorhubProfile": classad_string(plan.profile.slug),
        "MY.CondorhubRequest": classad_string(json.dumps(_resubmit_request(req), separators=(",", ":"))),
    }
    if grid:
        commands["MY.CondorhubScan"] = "$(ClusterId)"
        commands["MY.CondorhubScanParams"] = classad_string(" ".join(grid.names))
        commands["MY.CondorhubScanValues"] = '"' + " ".join(f"$({n})" for n in grid.names) + '"'
        return Description(commands, grid.names, tuple(grid.points()))
    return Description(commands)


def _resubmit_request(req: Request) -> dict:
    # Raw values: classad_string escapes the whole JSON once.
    return {"path": req.path, "profile": req.profile, "arguments": req.arguments, "parameters": req.parameters}


def point_folders(plan: Plan) -> list[str]:
    """Relative folders (under the scan folder) of every point, created before the submit."""
    if not plan.grid:
        return []
    return [plan.grid.point_folder(p) for p in plan.grid.points()]
