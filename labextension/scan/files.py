"""Files for the grid's frames (HTML, PDF): {base_url}condorhub/scan/file/<path>.

jupyter-server's /files/ would do for images, but not in frames: behind JupyterHub every page of the
user's server says ``frame-ancestors 'none'``, so a PDF or HTML result in an <iframe> is blocked. This is
the same authenticated file handler with a policy for exactly this use: framed only by the Lab's own
pages, and as a sandbox without scripts, since a result (HTML, or a PDF with JavaScript, or a "PDF" that
is something else) is not trusted: whatever it runs gets an opaque origin, never the Lab's, so it can
neither read the Lab's pages nor call the server as the user. The sandbox is this response header, not
the frame's ``sandbox`` attribute, because Chromium's PDF viewer refuses to load in a frame with that
attribute but does render under the header (measured with Debian's Chromium 156). Paths are confined like
the API's: no symlink out of the root.
"""

from __future__ import annotations

from pathlib import Path

from jupyter_server.base.handlers import AuthenticatedFileHandler
from tornado import web

from ..paths import PathRefused, resolve_inside


class ScanFileHandler(AuthenticatedFileHandler):
    @property
    def content_security_policy(self) -> str:
        return "frame-ancestors 'self'; sandbox"

    def check_xsrf_cookie(self):
        """No XSRF token in frame URLs (it would sit in the frame's address, where the framed document
        can read it, and in logs). A GET is a read; what the token guards against for reads is another
        site including the file, and the browser says whether a request comes from this origin
        (Sec-Fetch-Site); without that header jupyter-server checks the Referer, as for /files/."""
        if self.request.method in ("GET", "HEAD") and self.request.headers.get("Sec-Fetch-Site") == "same-origin":
            return
        super().check_xsrf_cookie()

    def validate_absolute_path(self, root: str, absolute_path: str) -> str | None:  # type: ignore[override]
        # tornado checks the lexical path only; a symlink out of the root must not be served either.
        try:
            resolve_inside(root, str(Path(absolute_path).relative_to(Path(root).absolute())))
        except (PathRefused, ValueError):
            raise web.HTTPError(404) from None
        return super().validate_absolute_path(root, absolute_path)
