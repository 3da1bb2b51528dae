"""REST API of the Jobs panel (all under {base_url}condorhub/api/; contract: the Jobs API brief, issue 12):

GET  jobs                                 the user's jobs (queue + recent history), the profiles
GET  jobs/<id>/output?stream=&offset=     stdout/stderr appended since offset
POST jobs/<id>/remove|hold|release|resubmit
POST jobs/preview, jobs                   a Submit → its description / the submitted job
POST scans/preview, scans                 a Scan (Submit + grid) → its description / the submitted cluster
GET  scans/<cluster>                      the scan's grid of point states

Bad input is a 400 whose message names the problem and the fix, and nothing is submitted; a schedd that
cannot be reached is a 503 (the Lab keeps what the user typed and says so).
"""

from __future__ import annotations

import time
from pathlib import Path

from jupyter_server.auth.decorator import authorized
from tornado import web

from ..handlers_base import CondorhubAPIHandler
from ..paths import PathRefused, resolve_inside
from . import output
from .describe import Refused, build, choose_profile, parse_grid, parse_request
from .model import FINAL_STATES, merge, output_path, request_of, scan_summary, to_job
from .plan import create_folders, make_plan, remove_folders
from .queue import JobNotFound, PoolRefused, QueueUnreachable

_JOB_ID = r"(\d+)\.(\d+)"


def unreachable(reason: str) -> web.HTTPError:
    return web.HTTPError(503, f"The HTCondor queue cannot be reached: {reason}; try again")


class JobsHandler(CondorhubAPIHandler):
    # Submitting runs code as the user, like starting a kernel: the same permission.
    auth_resource = "kernels"

    @property
    def jobs(self):
        return self.app.jobs

    def require_access(self):
        reason = self.jobs.no_access
        if reason:
            raise web.HTTPError(503, reason)

    async def guarded(self, call):
        """Await a queue call, mapping HTCondor's failures to answers."""
        try:
            return await call
        except QueueUnreachable as err:
            raise unreachable(str(err)) from None
        except PoolRefused as err:
            raise web.HTTPError(400, f"The pool refused: {err}") from None
        except JobNotFound as err:
            raise web.HTTPError(404, str(err)) from None

    def job_json(self, ad: dict) -> dict:
        return to_job(ad, str(self.real_root))

    # ---------------------------------------------------------------- submit pieces

    def plan_from(self, body: dict, *, scan: bool):
        self.require_access()
        try:
            request = parse_request(body)
            profile = choose_profile(request.profile, self.jobs.profiles)
            grid = parse_grid(body.get("grid"), self.jobs.max_points) if scan else None
            plan = make_plan(
                self.real_root,
                request,
                profile,
                python=self.jobs.python,
                home=self.jobs.home,
                allow_hidden=self.allow_hidden,
                grid=grid,
            )
            return plan, build(plan)
        except PathRefused as err:
            raise web.HTTPError(err.status, str(err)) from None
        except Refused as err:
            raise web.HTTPError(400, str(err)) from None

    async def submit_plan(self, plan, description) -> int:
        made = create_folders_or_refuse(plan)
        try:
            cluster = await self.guarded(self.jobs.queue.submit(description))
        except BaseException:
            remove_folders(made)
            raise
        try:
            # The description next to the output, for condor_submit by hand (users learn HTCondor here).
            (Path(plan.folder) / "submit.sub").write_text(description.text())
        except OSError:
            pass
        return cluster


def create_folders_or_refuse(plan):
    try:
        return create_folders(plan)
    except PathRefused as err:
        raise web.HTTPError(err.status, str(err)) from None


class JobsListHandler(JobsHandler):
    @web.authenticated
    @authorized
    async def get(self):
        profiles = [p.to_json() for p in self.jobs.profiles]
        reason = self.jobs.no_access
        if reason:
            self.finish({"schedd": "unreachable", "message": reason, "jobs": [], "profiles": profiles})
            return
        try:
            queue, history = await self.jobs.queue.list_jobs()
        except QueueUnreachable as err:
            message = unreachable(str(err)).log_message
            self.finish({"schedd": "unreachable", "message": message, "jobs": [], "profiles": profiles})
            return
        jobs = [self.job_json(ad) for ad in merge(queue, history)]
        self.finish({"schedd": "ok", "message": None, "jobs": jobs, "profiles": profiles})

    @web.authenticated
    @authorized
    async def post(self):
        plan, description = self.plan_from(self.json_body(), scan=False)
        cluster = await self.submit_plan(plan, description)
        ad = await self.guarded(self.jobs.queue.job(cluster, 0))
        self.finish({"job": self.job_json(ad), "description": description.text()})


class JobsPreviewHandler(JobsHandler):
    @web.authenticated
    @authorized
    async def post(self):
        plan, description = self.plan_from(self.json_body(), scan=False)
        self.finish({"description": description.text(), "folder": plan.rel_folder})


class ScansHandler(JobsHandler):
    def scan_answer(self, plan, description, cluster: int | None) -> dict:
        grid = plan.grid
        return {
            "cluster": cluster,
            "count": description.count,
            "folder": plan.rel_folder,
            "pattern": grid.pattern() if grid else "",
            "description": description.text(),
        }


class ScansPreviewHandler(ScansHandler):
    @web.authenticated
    @authorized
    async def post(self):
        plan, description = self.plan_from(self.json_body(), scan=True)
        self.finish(self.scan_answer(plan, description, None))


class ScansSubmitHandler(ScansHandler):
    @web.authenticated
    @authorized
    async def post(self):
        plan, description = self.plan_from(self.json_body(), scan=True)
        cluster = await self.submit_plan(plan, description)
        self.finish(self.scan_answer(plan, description, cluster))


class ScanHandler(ScansHandler):
    @web.authenticated
    @authorized
    async def get(self, cluster: str):
        self.require_access()
        queue, history = await self.guarded(self.jobs.queue.scan(int(cluster)))
        summary = scan_summary(int(cluster), merge(queue, history), str(self.real_root))
        if summary is None:
            raise web.HTTPError(404, f"there is no scan {cluster} of yours (in the queue or the recent history)")
        self.finish(summary)


class JobOutputHandler(JobsHandler):
    @web.authenticated
    @authorized
    async def get(self, cluster: str, proc: str):
        self.require_access()
        stream = self.get_argument("stream", "stdout")
        if stream not in ("stdout", "stderr"):
            raise web.HTTPError(400, f"stream must be stdout or stderr, not {stream!r}")
        try:
            offset = int(self.get_argument("offset", "0"))
        except ValueError:
            offset = -1
        if offset < 0:
            raise web.HTTPError(400, "offset must be a whole number of bytes >= 0 (the offset of the last answer)")
        ad = await self.guarded(self.jobs.queue.job(int(cluster), int(proc)))
        path = output_path(ad, stream)
        final = to_job(ad, str(self.real_root))["state"] in FINAL_STATES
        if path is None:
            self.finish({"data": "", "offset": offset, "done": final})
            return
        try:
            # The job's own ad names the file; still only inside the Lab's root, like every path of the API.
            real, _ = resolve_inside(self.real_root, _relative(self.real_root, path), must_exist=False)
        except PathRefused:
            raise web.HTTPError(403, f"the job's {stream} ({path}) is outside the Lab's root folder") from None
        data, new_offset = await self.jobs.in_thread(output.read_from, str(real), offset, final=final)
        done = final and output.at_end(str(real), new_offset)
        self.finish({"data": data, "offset": new_offset, "done": done})


def _relative(root: Path, path: str) -> str:
    p = Path(path)
    if not p.is_absolute() or not (p == root or root in p.parents):
        raise PathRefused("outside")
    return p.relative_to(root).as_posix()


class JobActionHandler(JobsHandler):
    @web.authenticated
    @authorized
    async def post(self, cluster: str, proc: str, action: str):
        self.require_access()
        c, p = int(cluster), int(proc)
        if action == "resubmit":
            self.finish({"job": await self.resubmit(c, p)})
            return
        await self.guarded(self.jobs.queue.act(action, c, p))
        self.finish({"job": self.job_json(await self.guarded(self.jobs.queue.job(c, p)))})

    async def resubmit(self, cluster: int, proc: int) -> dict:
        """The same file, profile, arguments and parameters again: a job into a new folder next to the old
        one, a scan point into its own point folder (the scan's grid then shows the new job)."""
        ad = await self.guarded(self.jobs.queue.job(cluster, proc))
        request = request_of(ad)
        if request is None:
            raise web.HTTPError(
                400, f"job {cluster}.{proc} was not submitted from the Lab; submit it again with condor_submit"
            )
        scan = to_job(ad, str(self.real_root))["scan"]
        folder = ad.get("CondorhubFolder") or ""
        if scan and scan["params"]:
            body = {**request, "folder": folder, "grid": {k: [v] for k, v in scan["params"].items()}}
            plan, description = self.plan_from(body, scan=True)
            description.commands["MY.CondorhubScan"] = str(scan["cluster"])
        else:
            body = {**request, "folder": self.next_folder(folder)}
            plan, description = self.plan_from(body, scan=False)
        new = await self.submit_plan(plan, description)
        return self.job_json(await self.guarded(self.jobs.queue.job(new, 0)))

    def next_folder(self, folder: str) -> str:
        """``<folder>-2``, ``-3``, ...: the first that does not exist (the old output stays)."""
        base = folder.rstrip("/") or f"jobs/resubmit-{time.strftime('%Y%m%d-%H%M%S')}"
        for n in range(2, 1000):
            candidate = f"{base}-{n}"
            if not (self.real_root / candidate).exists():
                return candidate
        raise web.HTTPError(400, f"{base!r} has 1000 resubmitted copies; clean some up first")


def handlers():
    return [
        (r"condorhub/api/jobs", JobsListHandler),
        (r"condorhub/api/jobs/preview", JobsPreviewHandler),
        (rf"condorhub/api/jobs/{_JOB_ID}/output", JobOutputHandler),
        (rf"condorhub/api/jobs/{_JOB_ID}/(remove|hold|release|resubmit)", JobActionHandler),
        (r"condorhub/api/scans/preview", ScansPreviewHandler),
        (r"condorhub/api/scans", ScansSubmitHandler),
        (r"condorhub/api/scans/(\d+)", ScanHandler),
    ]
