"""multipart/form-data bodies that are already in memory -> raw field values and file contents.

Werkzeug's streaming parser compiles two regular expressions per request (the boundary differs every time),
which made it the largest cost of accepting a post. A well-formed RFC 7578 body (CRLF line breaks) is split
here with bytes operations instead; anything this fast path does not recognise goes to Werkzeug's multipart
decoder, so unusual senders (bare LF line breaks, folded headers) are still understood. Both paths give the
same thing, raw bytes per field, so the caller decodes text in one place and both refuse the same values.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from werkzeug.http import parse_options_header
from werkzeug.sansio.multipart import Data, Epilogue, Field, File, MultipartDecoder, NeedData

CRLF = b"\r\n"
HEADER_END = b"\r\n\r\n"
CLOSE_MARK = b"--"  # after the last boundary


@dataclass
class FormData:
    fields: dict[str, bytes] = field(default_factory=dict)  # name -> raw value; first occurrence wins
    files: dict[str, bytes] = field(default_factory=dict)  # name -> content of a part with a filename


class InvalidMultipart(ValueError):
    """Not a multipart body either parser understands; the message says why, for the sender."""


def parse(body: bytes, boundary: str | None) -> FormData:
    """The fields and files of `body`; raises InvalidMultipart."""
    if not boundary:
        raise InvalidMultipart("multipart/form-data without a boundary")
    return _split_crlf(body, boundary) or _decode(body, boundary)


def _decode(body: bytes, boundary: str) -> FormData:
    """Werkzeug's decoder, for what the fast path does not recognise."""
    decoder = MultipartDecoder(boundary.encode("latin-1"))
    decoder.receive_data(body)
    decoder.receive_data(None)
    form, target, name, parts = FormData(), None, None, []
    try:
        while not isinstance(event := decoder.next_event(), Epilogue):
            if isinstance(event, NeedData):
                raise InvalidMultipart("truncated multipart body: no closing boundary")
            if isinstance(event, (Field, File)):
                target, name, parts = form.fields if isinstance(event, Field) else form.files, event.name, []
            elif isinstance(event, Data):
                parts.append(event.data)
                if not event.more_data and name is not None:
                    target.setdefault(name, b"".join(parts))
    except ValueError as exc:  # Werkzeug's own refusals (a part without Content-Disposition, non-UTF-8 headers)
        raise InvalidMultipart(f"malformed multipart body: {exc}") from exc
    return form


def _split_crlf(body: bytes, boundary: str) -> FormData | None:
    """Split `body` on `boundary`; None if it is not a CRLF multipart body this fast path understands."""
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
