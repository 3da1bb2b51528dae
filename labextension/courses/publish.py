"""*Publish to course…* in the Lab: what a publish would send, and the publish itself through the hub.

    GET  {base_url}condorhub/api/courses/teaching               the courses the user may publish to
    GET  {base_url}condorhub/api/courses/publish?path=<folder>  what publishing that folder would send
    POST {base_url}condorhub/api/courses/publish {"course": "<slug>", "path": "<folder>"}

The preview runs here, in the user's own server (as the user), with the hub's reader's own listing
(:func:`condorhub.courses.reader.listing`): what it counts is what the hub's reader, also running as the
user, will send, and what it skips (links, ``.git``, special files) is named. The publish itself is the
hub's (condorhub.courses.publish); this server only forwards the request with its own token
(:mod:`.hubapi`), so the hub publishes as the server's owner and nobody else. Only the owner may use these
handlers: someone the hub lets into this server (an admin, say) does not publish in the owner's name.
"""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path

from jupyter_server.base.handlers import APIHandler
from tornado import web

from condorhub.courses import reader, stream

from ..paths import PathRefused, resolve_inside
from .hubapi import HubAPI, HubAPIError

TEACHING_PATH = "condorhub/api/courses/teaching"
PUBLISH_PATH = "condorhub/api/courses/publish"
HUB_TEACHING = "condorhub/teaching"
SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")
BIGGEST = 5
LISTED = 20
# The hub's publish has its own deadline (course_publishing.timeout); this is only for a hub gone silent.
FORWARD_MARGIN = 60


def home_dir() -> Path:
    return Path(os.environ.get("HOME") or Path.home()).resolve()


def summarize(top: Path, limits: dict) -> dict:
    """What publishing ``top`` would send: counts, the biggest files, what is left out, and the problem, if any."""
    excluded: list[str] = []
    try:
        files, skipped = reader.listing(str(top), excluded)
    except reader.ReadError as err:
        return {
            "files": 0,
            "bytes": 0,
            "biggest": [],
            "skipped": [],
            "skipped_count": 0,
            "excluded": [],
            "problem": f"cannot read the folder: {err}",
        }
    total = sum(size for _, size, _ in files)
    problem = None
    try:
        for path, _, _ in files:
            try:
                stream.check_path(path)
            except stream.StreamRefused as err:
                raise reader.ReadError(f"{err}; rename it") from None
        reader.check_limits(files, stream.Limits(max_bytes=int(limits["max_size"]), max_files=int(limits["max_files"])))
    except reader.ReadError as err:
        problem = str(err)
    if not files and problem is None:
        problem = "the folder holds no file to publish"
    biggest = sorted(files, key=lambda f: (-f[1], f[0]))[:BIGGEST]
    return {
        "files": len(files),
        "bytes": total,
        "biggest": [{"path": path, "size": size} for path, size, _ in biggest],
        "skipped": skipped[:LISTED],
        "skipped_count": len(skipped),
        "excluded": excluded[:LISTED],
        "problem": problem,
    }


class _PublishAPIHandler(APIHandler):
    @property
    def hub(self) -> HubAPI:
        hub = HubAPI.from_env()
        if hub is None:
            raise web.HTTPError(503, "This server does not run under JupyterHub: there is no hub to publish to.")
        return hub

    def check_owner(self) -> None:
        owner = os.environ.get("JUPYTERHUB_USER")
        name = getattr(self.current_user, "username", None)
        if owner and name != owner:
            raise web.HTTPError(
                403, f"Only {owner} may publish from this server; log in to your own server to publish."
            )

    async def ask_hub(self, method: str, path: str, body: dict | None = None, timeout: float = 30) -> dict:
        try:
            return await self.hub.request(method, path, body, timeout=timeout)
        except HubAPIError as err:
            raise web.HTTPError(err.status if 400 <= err.status < 600 else 502, str(err)) from None

    def folder(self, path: str | None) -> tuple[Path, str, str]:
        """(real folder, Lab path, path relative to the home) of a folder the file browser shows."""
        try:
            real, rel = resolve_inside(Path(self.settings["server_root_dir"]).expanduser(), path)
        except PathRefused as err:
            if err.status == 404:
                raise web.HTTPError(404, f"There is no folder {(path or '').strip()!r} in your files.") from None
            raise web.HTTPError(err.status, str(err)) from None
        if not real.is_dir():
            raise web.HTTPError(400, f"{rel!r} is a file: publish the folder that holds the course material.")
        home = home_dir()
        if real == home or home not in real.parents:
            raise web.HTTPError(
                400,
                "Pick a folder inside your home to publish (e.g. teaching/dl-intro); your whole home, with ~/.ssh "
                "and your other files, is never published.",
            )
        return real, rel, str(real.relative_to(home))


class TeachingHandler(_PublishAPIHandler):
    """The courses the user teaches and may publish to, and the hub's limits (an empty list for students)."""

    @web.authenticated
    async def get(self):
        if HubAPI.from_env() is None:
            self.finish({"courses": [], "limits": None, "reason": "not running under JupyterHub"})
            return
        self.check_owner()
        self.finish(await self.ask_hub("GET", HUB_TEACHING))


class PublishHandler(_PublishAPIHandler):
    @web.authenticated
    async def get(self):
        """What publishing ``?path=`` would send, with the courses it could go to."""
        self.check_owner()
        real, rel, in_home = self.folder(self.get_argument("path", ""))
        teaching = await self.ask_hub("GET", HUB_TEACHING)
        summary = await asyncio.to_thread(summarize, real, teaching["limits"])
        self.finish({"path": rel, "folder": in_home, **summary, **teaching})

    @web.authenticated
    async def post(self):
        self.check_owner()
        body = self.get_json_body()
        if not isinstance(body, dict) or not isinstance(body.get("course"), str):
            raise web.HTTPError(400, 'Send {"course": "<course>", "path": "<folder>"}.')
        slug = body["course"]
        if not SLUG.match(slug):
            raise web.HTTPError(400, f"{slug!r} is not a course name (lower-case letters, digits and -).")
        _, rel, in_home = self.folder(body.get("path"))
        teaching = await self.ask_hub("GET", HUB_TEACHING)
        timeout = float((teaching.get("limits") or {}).get("timeout") or 300) + FORWARD_MARGIN
        self.log.info("publishing ~/%s to course %s", in_home, slug)
        result = await self.ask_hub("POST", f"condorhub/courses/{slug}/publish", {"folder": in_home}, timeout=timeout)
        self.finish({"path": rel, "folder": in_home, **result})


def handlers(base_url: str) -> list:
    from jupyter_server.utils import url_path_join

    return [
        (url_path_join(base_url, TEACHING_PATH), TeachingHandler),
        (url_path_join(base_url, PUBLISH_PATH), PublishHandler),
    ]
