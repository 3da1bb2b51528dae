"""What a job ad means for a Jupyter server: its phase, where it runs, and why it waits or ended.

Pure functions over plain dicts (job ads and slot ads as :mod:`.client` returns them), so every rule is
unit-tested without a pool. Stock batchspawner matched regular expressions against ``condor_q`` output
and treated anything but idle/running as "gone"; here a held job is held (with HTCondor's reason), a job
that is transferring output or suspended is still alive, and only a job that left the queue is gone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from condorhub.schema import CondorProfile

# HTCondor's JobStatus codes.
IDLE, RUNNING, REMOVED, COMPLETED, HELD, TRANSFERRING_OUTPUT, SUSPENDED = 1, 2, 3, 4, 5, 6, 7
STATUS_NAMES = {
    IDLE: "idle",
    RUNNING: "running",
    REMOVED: "removed",
    COMPLETED: "completed",
    HELD: "held",
    TRANSFERRING_OUTPUT: "transferring output",
    SUSPENDED: "suspended",
}


class Phase(StrEnum):
    """A job's status as the spawner acts on it."""

    queued = "queued"  # idle: waiting for a match
    running = "running"  # running, suspended or transferring output: the job is on a node
    held = "held"  # needs the user or an admin; the server cannot come back by itself
    ended = "ended"  # removed or completed (still listed until the schedd forgets it)


_SINFUL_HOST = re.compile(r"^<\[?([0-9A-Fa-f.:]+?)\]?:\d+")


@dataclass(frozen=True)
class Job:
    """The attributes of one job ad that condorhub acts on."""

    id: str
    status: int
    owner: str = ""
    qdate: int = 0
    entered_status: int = 0
    start_date: int | None = None  # JobCurrentStartDate: when the current run began (epoch seconds)
    num_starts: int = 0
    remote_host: str = ""  # slot1_1@node.example.org
    startd_address: str = ""  # the startd's sinful string <10.0.0.5:9618?...>
    hold_reason: str = ""
    remove_reason: str = ""
    exit_code: int | None = None
    request_gpus: int = 0
    assigned_gpus: str = ""
    hub: str = ""
    user: str = ""
    server: str = ""

    @classmethod
    def from_ad(cls, ad: dict[str, Any]) -> Job:
        def num(key, default=0):
            value = ad.get(key)
            return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else default

        return cls(
            id=f"{num('ClusterId')}.{num('ProcId')}",
            status=num("JobStatus"),
            owner=str(ad.get("Owner") or ""),
            qdate=num("QDate"),
            entered_status=num("EnteredCurrentStatus"),
            start_date=num("JobCurrentStartDate", None),
            num_starts=num("NumJobStarts"),
            remote_host=str(ad.get("RemoteHost") or ""),
            startd_address=str(ad.get("StartdIpAddr") or ""),
            hold_reason=str(ad.get("HoldReason") or ""),
            remove_reason=str(ad.get("RemoveReason") or ""),
            exit_code=num("ExitCode", None),
            request_gpus=num("RequestGpus"),
            assigned_gpus=str(ad.get("AssignedGPUs") or ""),
            hub=str(ad.get("CondorhubHub") or ""),
            user=str(ad.get("CondorhubUser") or ""),
            server=str(ad.get("CondorhubServer") or ""),
        )

    @property
    def phase(self) -> Phase:
        if self.status == IDLE:
            return Phase.queued
        if self.status in (RUNNING, TRANSFERRING_OUTPUT, SUSPENDED):
            return Phase.running
        if self.status == HELD:
            return Phase.held
        return Phase.ended

    @property
    def status_name(self) -> str:
        return STATUS_NAMES.get(self.status, f"status {self.status}")

    @property
    def node(self) -> str:
        """The execute machine's name (from RemoteHost ``slot1_1@machine``)."""
        return self.remote_host.rpartition("@")[2]

    @property
    def node_address(self) -> str:
        """The execute machine's IP address, from the startd's address; else its name."""
        match = _SINFUL_HOST.match(self.startd_address)
        return match.group(1) if match else self.node

    def end_reason(self) -> str:
        """Why this job is no longer a usable server, in words for the user."""
        if self.status == HELD:
            return f"HTCondor held the job: {self.hold_reason or 'no reason given'}"
        if self.status == REMOVED:
            return f"the job was removed from the queue: {self.remove_reason or 'no reason given'}"
        if self.status == COMPLETED:
            code = "" if self.exit_code is None else f" with code {self.exit_code}"
            return f"the server's job ended{code}"
        return f"the job is {self.status_name}"


def queue_position(job: Job, idle: list[Job]) -> int:
    """How many idle jobs were queued before ``job`` and compete for the same kind of slot.

    HTCondor does not serve the queue first-come-first-served (user priorities decide), so this is the
    honest approximation: jobs submitted earlier that want GPUs if this one wants GPUs (or CPU-only jobs
    for a CPU-only job).
    """
    wants_gpus = job.request_gpus > 0
    return sum(
        1
        for other in idle
        if other.id != job.id
        and other.status == IDLE
        and (other.request_gpus > 0) == wants_gpus
        and (other.qdate, _id_key(other.id)) < (job.qdate, _id_key(job.id))
    )


def _id_key(job_id: str) -> tuple[int, int]:
    cluster, _, proc = job_id.partition(".")
    return int(cluster or 0), int(proc or 0)


MiB = 1024 * 1024


@dataclass(frozen=True)
class Request:
    """What a job asks of the pool, in HTCondor's units: built once from a profile, rendered once into the
    submit description (:func:`.submit.resource_commands`), and read by :func:`wait_reason`."""

    cpus: int = 1
    memory_mb: int = 0  # 0: HTCondor's default request
    gpus: int = 0
    gpu_min_capability: float | None = None
    gpu_min_memory_mb: int | None = None
    runtime_seconds: int | None = None  # allowed_job_duration; None: no limit of condorhub's

    @classmethod
    def from_profile(cls, profile: CondorProfile) -> Request:
        """The request of a `condor` profile of the site file (sizes already in bytes, durations in seconds)."""
        return cls(
            cpus=profile.cpus,
            memory_mb=max(profile.memory // MiB, 1),
            gpus=profile.gpus,
            gpu_min_capability=profile.gpus_minimum_capability,
            gpu_min_memory_mb=(
                max(profile.gpus_minimum_memory // MiB, 1) if profile.gpus_minimum_memory is not None else None
            ),
            runtime_seconds=round(profile.runtime),
        )


@dataclass
class _Machine:
    total_gpus: int = 0
    free_gpus: int = 0
    free_cpus: float = 0
    free_memory: int = 0
    capability: float | None = None
    gpu_memory: int | None = None


def _machines(slots: list[dict]) -> dict[str, _Machine]:
    machines: dict[str, _Machine] = {}
    for slot in slots:
        name = str(slot.get("Machine") or slot.get("Name") or "?")
        m = machines.setdefault(name, _Machine())
        kind = slot.get("SlotType")
        gpus = int(slot.get("GPUs") or 0)
        if kind == "Dynamic":
            continue  # its resources are counted in (and taken from) its partitionable parent
        if kind == "Partitionable":
            m.total_gpus += int(slot.get("TotalSlotGPUs") or 0)
            m.free_gpus += gpus
            m.free_cpus += float(slot.get("Cpus") or 0)
            m.free_memory += int(slot.get("Memory") or 0)
        else:  # a static slot: all or nothing
            m.total_gpus += gpus
            if slot.get("State") == "Unclaimed":
                m.free_gpus += gpus
                m.free_cpus += float(slot.get("Cpus") or 0)
                m.free_memory += int(slot.get("Memory") or 0)
        capability = slot.get("GPUs_Capability")
        if isinstance(capability, (int, float)):
            m.capability = max(m.capability or 0, float(capability))
        gpu_memory = slot.get("GPUs_GlobalMemoryMb")
        if isinstance(gpu_memory, (int, float)):
            m.gpu_memory = max(m.gpu_memory or 0, int(gpu_memory))
    return machines


def _gpus(n: int) -> str:
    return f"{n} GPU" if n == 1 else f"{n} GPUs"


def wait_reason(request: Request, slots: list[dict]) -> str:
    """Why a job with ``request`` is not running yet, judged from the collector's slot ads.

    The first reason that applies, from "can never run here" to "waits for something to free up".
    """
    machines = _machines(slots)
    if not machines:
        return "no execute node has reported to the pool; ask the admins whether the nodes are up"
    if request.gpus:
        gpu_machines = {n: m for n, m in machines.items() if m.total_gpus > 0}
        most = max((m.total_gpus for m in machines.values()), default=0)
        if most < request.gpus:
            return (
                f"no node in the pool has {_gpus(request.gpus)} (the largest has {most}); choose a profile with "
                "fewer GPUs"
            )
        if request.gpu_min_capability is not None:
            best = max((m.capability or 0 for m in gpu_machines.values()), default=0)
            if best < request.gpu_min_capability:
                return (
                    f"no GPU in the pool has compute capability {request.gpu_min_capability:g} or more "
                    f"(the best has {best:g})"
                )
        if request.gpu_min_memory_mb is not None:
            best = max((m.gpu_memory or 0 for m in gpu_machines.values()), default=0)
            if best < request.gpu_min_memory_mb:
                return (
                    f"no GPU in the pool has {request.gpu_min_memory_mb} MB of memory or more "
                    f"(the largest has {best} MB)"
                )
        total = sum(m.total_gpus for m in machines.values())
        free = sum(m.free_gpus for m in machines.values())
        if not any(m.free_gpus >= request.gpus for m in machines.values()):
            return f"waiting for {_gpus(request.gpus)} to become free: {free} of the pool's {total} GPUs are free"
        fitting = [m for m in machines.values() if m.free_gpus >= request.gpus]
    else:
        fitting = list(machines.values())
    if not any(m.free_cpus >= request.cpus for m in fitting):
        best = max((m.free_cpus for m in fitting), default=0)
        return f"waiting for {request.cpus} free CPU core(s) on one node (at most {best:g} free)"
    if request.memory_mb and not any(
        m.free_memory >= request.memory_mb for m in fitting if m.free_cpus >= request.cpus
    ):
        best = max((m.free_memory for m in fitting), default=0)
        return f"waiting for {request.memory_mb} MB of free memory on one node (at most {best} MB free)"
    return "the resources are free; waiting for HTCondor's next matchmaking cycle"
