"""REST API of the scan browser (all under {base_url}condorhub/api/scan/):

GET    suggest?path=F            a suggested pattern and presets for folder F
POST   match {path, pattern, offset?, limit?}
                                 axes and matching files (paged); 400 for a bad or too slow pattern
GET    patterns?path=F           the patterns saved for F
PUT    patterns {path, name, pattern}
DELETE patterns?path=F&name=N
"""

from __future__ import annotations

import asyncio
from functools import partial

from jupyter_server.auth.decorator import authorized
from tornado import web

from ..handlers_base import CondorhubAPIHandler
from ..paths import PathRefused, clean_relative
from .match import scan
from .pattern import PatternError, compile_pattern
from .store import StoreError
from .suggest import suggest


class ScanHandler(CondorhubAPIHandler):
    # Reading a scan is reading files: the same permission as the Lab's file browser.
    auth_resource = "contents"

    async def in_worker(self, func, *args, **kwargs):
        # Walking and matching a big tree takes a while; off the event loop, on the app's small pool, so
        # that other users of this server (the kernel messages, the file browser) stay responsive.
        return await asyncio.get_running_loop().run_in_executor(self.app.scan_pool, partial(func, *args, **kwargs))


class SuggestHandler(ScanHandler):
    @web.authenticated
    @authorized
    async def get(self):
        real, rel = self.resolve(self.get_argument("path", ""), folder=True)
        result = await self.in_worker(suggest, real, self.allow_hidden)
        self.finish({"path": rel, **result})


class MatchHandler(ScanHandler):
    @web.authenticated
    @authorized
    async def post(self):
        body = self.json_body()
        real, rel = self.resolve(body.get("path", ""), folder=True)
        try:
            compiled = compile_pattern(body.get("pattern"))
        except PatternError as err:
            raise web.HTTPError(400, str(err)) from None
        limit = self.int_arg(body, "limit", self.app.max_matches, 1, self.app.max_matches)
        offset = self.int_arg(body, "offset", 0, 0, 10**9)
        try:
            result = await self.in_worker(
                scan,
                self.real_root,
                real,
                rel,
                compiled,
                max_files=self.app.max_files,
                regex_timeout=self.app.regex_timeout,
                offset=offset,
                limit=limit,
                allow_hidden=self.allow_hidden,
            )
        except PatternError as err:
            raise web.HTTPError(400, str(err)) from None
        self.finish(result)


class PatternsHandler(ScanHandler):
    @web.authenticated
    @authorized
    async def get(self):
        _, rel = self.resolve(self.get_argument("path", ""), folder=True)
        self.finish({"path": rel, "patterns": self.app.pattern_store.list(rel)})

    @web.authenticated
    @authorized
    async def put(self):
        body = self.json_body()
        _, rel = self.resolve(body.get("path", ""), folder=True)
        try:
            compiled = compile_pattern(body.get("pattern"))
            patterns = self.app.pattern_store.save(rel, body.get("name"), compiled.pattern)
        except (PatternError, StoreError) as err:
            raise web.HTTPError(400, str(err)) from None
        self.finish({"path": rel, "patterns": patterns})

    @web.authenticated
    @authorized
    async def delete(self):
        # The folder may be gone already; the saved entry is still the user's to delete.
        try:
            rel = clean_relative(self.get_argument("path", ""))
        except PathRefused as err:
            raise web.HTTPError(err.status, str(err)) from None
        name = self.get_argument("name", "")
        if not self.app.pattern_store.delete(rel, name):
            raise web.HTTPError(404, f"no saved pattern {name!r} for folder {rel or '.'!r}")
        self.finish({"path": rel, "patterns": self.app.pattern_store.list(rel)})


def handlers():
    return [
        (r"condorhub/api/scan/suggest", SuggestHandler),
        (r"condorhub/api/scan/match", MatchHandler),
        (r"condorhub/api/scan/patterns", PatternsHandler),
    ]
