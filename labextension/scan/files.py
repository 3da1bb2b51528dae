"""Files for the grid's frames (HTML, PDF): {base_url}condorhub/scan/file/<path>.

jupyter-server's /files/ would do for images, but not in frames: behind JupyterHub every page of the
user's server says ``frame-ancestors 'none'``, so a PDF or HTML result in an <iframe> is blocked. This is
the same authenticated file handler with a policy for exactly this use: framed only by the Lab's own
pages, and (except PDFs, which need the browser's viewer) as a sandbox without scripts, since a result's
HTML is not trusted. Paths are confined like the API's: no symlink out of the root.
"""

from __future__ import annotations

from pathlib import Path

from jupyter_server.base.handlers import AuthenticatedFileHandler
from tornado import web

from ..paths import PathRefused, resolve_inside


class ScanFileHandler(AuthenticatedFileHandler):
    @property
    def content_security_policy(self) -> str:
        if self.request.path.lower().endswith(".pdf"):
            return "frame-ancestors 'self'"
        return "frame-ancestors 'self'; sandbox"

    def validate_absolute_path(self, root: str, absolute_path: str) -> str | None:
        # tornado checks the lexical path only; a symlink out of the root must not be served either.
        try:
            resolve_inside(root, str(Path(absolute_path).relative_to(Path(root).absolute())))
        except (PathRefused, ValueError):
            raise web.HTTPError(404) from None
        return super().validate_absolute_path(root, absolute_path)
