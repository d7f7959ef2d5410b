"""The request body, checked as the app reads it, whichever server (gunicorn, Werkzeug's) hands it over.

- A body the server cannot decode (an invalid chunk size in chunked transfer, a connection cut mid-chunk) makes
  the server's reader raise its own exception types; here each is a 400, not a 500.
- A body that ends before its Content-Length (the client disconnected) is a 400 too: gunicorn marks its input
  as terminated, so Werkzeug then reads to the end of what arrived and would hand a short body to the view.
"""
from __future__ import annotations

from werkzeug.exceptions import BadRequest, HTTPException


class CheckedInput:
    """`wsgi.input` that raises BadRequest for a malformed or short body."""

    def __init__(self, stream, content_length: int | None):
        self._stream = stream
        self._expected = content_length
        self._received = 0

    def _checked(self, read, size: int, whole: bool) -> bytes:
        """`whole`: this call reads to the end of the body (read() without a size)."""
        try:
            data = read(size) if size is not None and size >= 0 else read()
        except HTTPException:
            raise
        except Exception as exc:  # the server's own reader: gunicorn's ParseException, NoMoreData, OSError, ...
            raise BadRequest(f"malformed request body: {type(exc).__name__} {exc}") from exc
        self._received += len(data)
        at_end = whole or (not data and size != 0)
        if at_end and self._expected is not None and self._received < self._expected:
            raise BadRequest(f"the request body ended after {self._received} of its {self._expected} bytes")
        return data

    def read(self, size: int = -1) -> bytes:
        return self._checked(self._stream.read, size, whole=size is None or size < 0)

    def readline(self, size: int = -1) -> bytes:
        return self._checked(self._stream.readline, size, whole=False)

    def __iter__(self):
        while line := self.readline():
            yield line


class CheckedBody:
    """WSGI middleware: every request's `wsgi.input` becomes a CheckedInput."""

    def __init__(self, wsgi_app):
        self.wsgi_app = wsgi_app

    def __call__(self, environ, start_response):
        raw = environ.get("CONTENT_LENGTH", "")
        length = int(raw) if raw.isascii() and raw.isdigit() else None
        environ["wsgi.input"] = CheckedInput(environ["wsgi.input"], length)
        return self.wsgi_app(environ, start_response)
