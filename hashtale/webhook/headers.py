"""What every response carries whatever view made it: security headers, and redirects that stay on this site.

This app never redirects to another site, so every Location is made a path: Werkzeug's routing redirects
(/admin -> /admin/) would otherwise be absolute URLs built from the request's Host header.

The admin pages load their script, style sheet and images from this origin only and have no inline script or
style, so the policy allows 'self' and nothing else; JSON answers and photos need none of it.
"""
from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from flask import Flask, Response

CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
    "base-uri 'none'",
])
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",  # photos and JSON are never sniffed into HTML or script
    "Referrer-Policy": "same-origin",  # URLs (status URLs carry a read token) never leak to another site
    "Cross-Origin-Resource-Policy": "same-origin",
}


def init_app(app: Flask) -> None:
    settings = app.config["SETTINGS"]
    hosts = [host.strip() for host in settings.trusted_hosts.split(",") if host.strip()]
    # Flask checks request.host against these on every request and answers 400 otherwise.
    app.config["TRUSTED_HOSTS"] = hosts or None
    app.after_request(_security_headers)


def _security_headers(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if response.location:
        parts = urlsplit(response.location)
        path = "/" + parts.path.lstrip("/")  # never "//host": that is another site
        response.location = urlunsplit(("", "", path, parts.query, ""))
    return response
