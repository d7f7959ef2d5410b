"""Log-in, log-out, and the guard every admin request passes: session first, then CSRF."""
from __future__ import annotations

import hmac
import re
import secrets

from flask import abort, flash, g, redirect, render_template, request, session, url_for
from flask_wtf.csrf import validate_csrf
from wtforms.validators import ValidationError

from hashtale.db.reviews import Admin
from hashtale.review.admins import authenticate
from hashtale.webhook.admin import bp
from hashtale.webhook.admin.forms import LoginForm, LogoutForm
from hashtale.webhook.database import db
from hashtale.webhook.throttle import throttle_failed_logins

PUBLIC_ENDPOINTS = frozenset({"admin.login", "admin.static"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
SESSION_KEY = "admin_id"
NONCE_KEY = "admin_nonce"
NONCE_BYTES = 32
SAFE_NEXT = re.compile(bp.url_prefix + r"/[\x21-\x5b\x5d-\x7e]*")  # printable ASCII without space or backslash


@bp.before_request
def require_login_and_csrf():
    g.admin = _session_admin()
    if g.admin is None and request.endpoint not in PUBLIC_ENDPOINTS:
        if request.method in SAFE_METHODS:
            return redirect(url_for("admin.login", next=request.full_path.rstrip("?")))
        abort(401, description="log in first: /admin/login")
    if request.method not in SAFE_METHODS:
        try:
            validate_csrf(request.form.get("csrf_token"))
        except ValidationError as exc:
            abort(400, description=f"refused: {exc.args[0] if exc.args else 'bad CSRF token'}")
    return None


def _session_admin() -> Admin | None:
    """The admin this session belongs to, unless log-out (of any of their sessions) has revoked it since."""
    admin_id, nonce = session.get(SESSION_KEY), session.get(NONCE_KEY)
    if not isinstance(admin_id, int) or not isinstance(nonce, str):
        return None
    admin = db.session.get(Admin, admin_id)
    if admin is None or admin.session_nonce is None or not hmac.compare_digest(admin.session_nonce, nonce):
        return None
    return admin


@bp.context_processor
def inject_admin():
    # Every page that shows a logged-in admin (the log-in page too) has the log-out button in its header.
    admin = g.get("admin")
    return {"admin": admin, "logout_form": LogoutForm() if admin is not None else None}


def _safe_next(target: str | None) -> str:
    # Only paths inside the admin pages (never an open redirect to another site), in printable ASCII: a line break
    # or other control character cannot go into a Location header.
    if target and SAFE_NEXT.fullmatch(target):
        return target
    return url_for("admin.queue")


@bp.route("/login", methods=["GET", "POST"])
@throttle_failed_logins
def login():
    form = LoginForm()
    if form.validate_on_submit():
        admin = authenticate(db.session, form.username.data, form.password.data)
        if admin is not None:
            if admin.session_nonce is None:  # kept while set, so one log-in does not end the admin's other sessions
                admin.session_nonce = secrets.token_hex(NONCE_BYTES)
                db.session.commit()
            session.clear()  # a fresh session: nothing from before the log-in survives
            session[SESSION_KEY] = admin.id
            session[NONCE_KEY] = admin.session_nonce
            session.permanent = True
            return redirect(_safe_next(request.args.get("next")))
        flash("Wrong username or password.", "error")
        return render_template("admin/login.html", form=form), 401
    return render_template("admin/login.html", form=form)


@bp.post("/logout")
def logout():
    g.admin.session_nonce = None  # revokes this cookie and every copy of it, and the admin's other sessions
    db.session.commit()
    session.clear()
    return redirect(url_for("admin.login"))
