"""A fast path for multipart/form-data bodies that are already in memory.

Werkzeug's streaming parser compiles two regular expressions per request (the boundary differs every time),
which made it the largest cost of accepting a post. A well-formed RFC 7578 body (CRLF line breaks) is split
here with bytes operations instead; anything this parser does not recognise returns None and the caller
falls back to Werkzeug, so unusual senders (bare LF line breaks, folded headers) are still understood.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from werkzeug.http import parse_options_header

CRLF = b"\r\n"
HEADER_END = b"\r\n\r\n"
CLOSE_MARK = b"--"  # after the last boundary


@dataclass
class FormData:
    fields: dict[str, bytes] = field(default_factory=dict)  # name -> raw value; first occurrence wins
    files: dict[str, bytes] = field(default_factory=dict)  # name -> content of a part with a filename


def parse(body: bytes, boundary: str | None) -> FormData | None:
    """Split `body` on `boundary`; None if it is not a CRLF multipart body this parser understands."""
    if not boundary:
        return None
    delimiter = CRLF + b"--" + boundary.encode("latin-1")
    chunks = (CRLF + body).split(delimiter)  # chunks[0] is the preamble
    form = FormData()
    for chunk in chunks[1:]:
        if chunk.startswith(CLOSE_MARK):
            return form
        head, sep, content = chunk.partition(HEADER_END)
        if not sep or not head.startswith(CRLF):
            return None
        disposition = _content_disposition(head)
        if disposition is None:
            return None
        name, filename = disposition
        target = form.fields if filename is None else form.files
        target.setdefault(name, content)
    return None  # no closing delimiter: truncated body


def _content_disposition(head: bytes) -> tuple[str, str | None] | None:
    """(name, filename or None) from a part's headers; None if they are not plain `Name: value` lines."""
    found = None
    for line in head[len(CRLF):].split(CRLF):
        key, colon, value = line.partition(b":")
        if not colon or key[:1] in (b" ", b"\t"):  # not a header, or a folded continuation line
            return None
        if key.strip().lower() == b"content-disposition":
            kind, options = parse_options_header(value.decode("latin-1"))
            if kind != "form-data" or "name" not in options:
                return None
            found = (options["name"], options.get("filename"))
    return found
