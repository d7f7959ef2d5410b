"""Admin accounts, and `hashtale create-admin USERNAME`: passwords are stored hashed (werkzeug.security)."""
from __future__ import annotations

import functools
import getpass
import sys

from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from hashtale.db.reviews import USERNAME_MAX, Admin
from hashtale.db.arguments import add_database_url, database_url
from hashtale.db.session import session_factory_for

MIN_PASSWORD_LENGTH = 8  # characters


@functools.cache
def _dummy_hash() -> str:
    # Checked when the username is unknown, so a wrong username costs as much time as a wrong password.
    return generate_password_hash("not-a-password")


class AdminError(ValueError):
    pass


def create_admin(session: Session, username: str, password: str) -> Admin:
    username = username.strip()
    if not username or len(username) > USERNAME_MAX:
        raise AdminError(f"username must be 1..{USERNAME_MAX} characters")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AdminError(f"password must be at least {MIN_PASSWORD_LENGTH} characters")
    if session.scalar(select(Admin.id).where(Admin.username == username)) is not None:
        raise AdminError(f"admin {username!r} already exists")
    admin = Admin(username=username, password_hash=generate_password_hash(password))
    session.add(admin)
    session.flush()
    return admin


def authenticate(session: Session, username: str, password: str) -> Admin | None:
    admin = session.scalar(select(Admin).where(Admin.username == username.strip()))
    if admin is None:
        check_password_hash(_dummy_hash(), password)
        return None
    return admin if check_password_hash(admin.password_hash, password) else None


def add_arguments(parser) -> None:
    parser.add_argument("username")
    parser.add_argument("--password-stdin", action="store_true",
                        help="read the password from the first line of stdin (scripts) instead of prompting")
    add_database_url(parser)


def run(args) -> int:
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            print("passwords differ", file=sys.stderr)
            return 1
    try:
        with session_factory_for(database_url(args)) as sessions, sessions.begin() as session:
            admin = create_admin(session, args.username, password)
    except AdminError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"admin {admin.username!r} created (id {admin.id})")
    return 0
