"""A job's ClassAd (as plain values) → the Job object of the REST API. Pure: no HTCondor, no file access."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import PurePosixPath
from typing import Any

#: The job attributes the API reads; a projection keeps queue and history queries small.
ATTRIBUTES = (
    "ClusterId",
    "ProcId",
    "JobStatus",
    "Owner",
    "QDate",
    "JobStartDate",
    "JobCurrentStartDate",
    "CompletionDate",
    "EnteredCurrentStatus",
    "HoldReason",
    "RemoveReason",
    "ExitCode",
    "ExitBySignal",
    "ExitSignal",
    "JobBatchName",
    "Cmd",
    "Iwd",
    "Out",
    "Err",
    "CondorhubJob",
    "CondorhubFile",
    "CondorhubFolder",
    "CondorhubProfile",
    "CondorhubRequest",
    "CondorhubScan",
    "CondorhubScanParams",
    "CondorhubScanValues",
)

#: HTCondor's JobStatus codes (1 idle ... 7 suspended) → the API's states; 4 is done or failed by exit code.
_STATES = {1: "queued", 2: "running", 3: "removed", 5: "held", 6: "running", 7: "suspended"}
FINAL_STATES = frozenset({"done", "failed", "removed"})


def state_of(ad: Mapping[str, Any]) -> str:
    status = ad.get("JobStatus")
    if status == 4:
        if ad.get("ExitBySignal") or (ad.get("ExitCode") not in (0, None)):
            return "failed"
        return "done"
    return _STATES.get(status, "queued") if isinstance(status, int) else "queued"


def job_id(ad: Mapping[str, Any]) -> str:
    return f"{ad.get('ClusterId')}.{ad.get('ProcId')}"


def _epoch(value: Any) -> int | None:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0 else None


def _string(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def relative_to_root(root: str, path: str | None) -> str | None:
    """``path`` (absolute) relative to the server root, or None when it is elsewhere (the Lab cannot open it)."""
    if not path:
        return None
    p, r = PurePosixPath(path), PurePosixPath(root)
    if p == r:
        return ""
    if r in p.parents:
        return p.relative_to(r).as_posix()
    return None


def output_path(ad: Mapping[str, Any], stream: str) -> str | None:
    """The absolute path of the job's stdout or stderr (Out/Err are relative to Iwd when not absolute)."""
    name = _string(ad.get("Out" if stream == "stdout" else "Err"))
    if not name or name == "/dev/null":
        return None
    if name.startswith("/"):
        return name
    iwd = _string(ad.get("Iwd"))
    return str(PurePosixPath(iwd) / name) if iwd else None


def scan_of(ad: Mapping[str, Any]) -> dict | None:
    cluster = ad.get("CondorhubScan")
    if not isinstance(cluster, int) or isinstance(cluster, bool):
        return None
    names = (_string(ad.get("CondorhubScanParams")) or "").split()
    values = (_string(ad.get("CondorhubScanValues")) or "").split()
    params = dict(zip(names, values, strict=False)) if len(names) == len(values) else {}
    return {"cluster": cluster, "params": params}


def request_of(ad: Mapping[str, Any]) -> dict | None:
    """The Lab request a job was submitted with (for resubmit), or None for jobs from elsewhere."""
    raw = _string(ad.get("CondorhubRequest"))
    if not raw:
        return None
    try:
        request = json.loads(raw)
    except ValueError:
        return None
    return request if isinstance(request, dict) else None


def to_job(ad: Mapping[str, Any], root: str) -> dict:
    """The API's Job for one ad; ``root`` is the server's real root folder."""
    state = state_of(ad)
    status = ad.get("JobStatus")
    finished = _epoch(ad.get("CompletionDate"))
    if finished is None and state in FINAL_STATES:
        finished = _epoch(ad.get("EnteredCurrentStatus"))
    exit_code = ad.get("ExitCode") if status == 4 and not ad.get("ExitBySignal") else None
    cmd = _string(ad.get("Cmd"))
    stdout, stderr = output_path(ad, "stdout"), output_path(ad, "stderr")
    return {
        "id": job_id(ad),
        "cluster": ad.get("ClusterId"),
        "proc": ad.get("ProcId"),
        "name": _string(ad.get("JobBatchName"))
        or _string(ad.get("CondorhubFile"))
        or (PurePosixPath(cmd).name if cmd else job_id(ad)),
        "state": state,
        "hold_reason": _string(ad.get("HoldReason")) if state == "held" else None,
        "exit_code": exit_code if isinstance(exit_code, int) else None,
        "submitted": _epoch(ad.get("QDate")),
        "started": _epoch(ad.get("JobStartDate")) or _epoch(ad.get("JobCurrentStartDate")),
        "finished": finished,
        "folder": relative_to_root(root, _string(ad.get("Iwd"))),
        "stdout": relative_to_root(root, stdout),
        "stderr": relative_to_root(root, stderr),
        "scan": scan_of(ad),
        "profile": _string(ad.get("CondorhubProfile")),
        "file": _string(ad.get("CondorhubFile")),
    }


def merge(queue: Iterable[Mapping[str, Any]], history: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Queue and history ads, each job once (a job that just left the queue can be in both: the history
    has its final state), newest cluster first, procs in order."""
    by_id: dict[tuple, Mapping[str, Any]] = {}
    for ad in queue:
        by_id[(ad.get("ClusterId"), ad.get("ProcId"))] = ad
    for ad in history:
        by_id[(ad.get("ClusterId"), ad.get("ProcId"))] = ad
    return sorted(by_id.values(), key=lambda ad: (-(ad.get("ClusterId") or 0), ad.get("ProcId") or 0))


def scan_pattern(names: Iterable[str]) -> str:
    """The scan browser's pattern for a scan's point folders ``lr_<v>/layers_<v>/`` (relative to the scan
    folder), one named group per parameter."""
    names = list(names)
    return "/".join(f"{n}_(?P<{n}>[^/]+)" for n in names) + "/.*" if names else ""


def scan_summary(cluster: int, ads: Iterable[Mapping[str, Any]], root: str) -> dict | None:
    """GET scans/<cluster>: the grid of points, each with the state of its newest job (a resubmitted point
    is a later cluster that names the same scan)."""
    ads = sorted(ads, key=lambda ad: (ad.get("ClusterId") or 0, ad.get("ProcId") or 0))
    if not ads:
        return None
    first = next((ad for ad in ads if ad.get("ClusterId") == cluster), ads[0])
    names = (_string(first.get("CondorhubScanParams")) or "").split()
    folder = _string(first.get("CondorhubFolder"))
    points: dict[tuple, dict] = {}
    for ad in ads:  # oldest first: a later job of the same point replaces the earlier one
        scan = scan_of(ad) or {"params": {}}
        key = tuple(scan["params"].get(n) for n in names)
        job = to_job(ad, root)
        entry = {"params": scan["params"], "state": job["state"], "id": job["id"], "exit_code": job["exit_code"]}
        if key in points:
            points[key].update(entry)
        else:
            points[key] = entry
    return {
        "cluster": cluster,
        "folder": folder,
        "pattern": scan_pattern(names),
        "params": names,
        "points": list(points.values()),
    }
