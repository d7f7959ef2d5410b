"""Admin access control: sessions, hashed passwords, CSRF, expiry, and reviewers' reviews being their own."""
from __future__ import annotations

import io
import time

import pytest
from sqlalchemy import func, select

from hashtale import cli
from hashtale.db.reviews import Admin, Review, ReviewStateChange
from tests.support.admin import PASSWORD, add_admin, add_post, csrf_token, log_in

SESSION_SECONDS = 1  # the shortest idle expiry the test can wait out
EXPIRY_WAIT = 2.5  # seconds: itsdangerous counts whole seconds, so the cookie must be 2 s old to be refused


@pytest.fixture
def post_id(sessions, tmp_path, coffee_jpeg) -> int:
    with sessions.begin() as session:
        add_admin(session, "ann")
        add_admin(session, "bob")
        return add_post(session, tmp_path / "media", coffee_jpeg, 1, ["coffee", "cup", "food"]).id


def _review_form(html: str, **changes) -> dict:
    form = {"csrf_token": csrf_token(html), "relevant": ["1"], "tags": "coffee cup", "hashtag_relevant": "yes",
            "story_meaningful": "yes", "story_closeness": "slight", "note": "", "save": "Save review"}
    form.update(changes)
    return form


def _count(sessions, model) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(model))


def test_every_admin_page_and_action_needs_a_session(app, post_id, sessions):
    client = app.test_client()
    for path in ("/admin/", f"/admin/posts/{post_id}", f"/admin/posts/{post_id}/heatmaps/1.png", "/admin/?page=2"):
        response = client.get(path)
        assert response.status_code == 302, path
        assert response.location.startswith("/admin/login?next=")
    for path in (f"/admin/posts/{post_id}/review", "/admin/logout"):
        response = client.post(path, data={"hashtag_relevant": "yes"})
        assert response.status_code == 401, path
    assert _count(sessions, Review) == 0
    assert client.get("/admin/login").status_code == 200


def test_log_in_takes_the_right_password_only_and_logs_out(app, post_id):
    client = app.test_client()
    token = csrf_token(client.get("/admin/login").get_data(as_text=True))
    wrong = client.post("/admin/login", data={"csrf_token": token, "username": "ann", "password": "wrong password"})
    assert wrong.status_code == 401
    unknown = client.post("/admin/login", data={"csrf_token": token, "username": "nobody", "password": PASSWORD})
    assert unknown.status_code == 401
    assert client.get("/admin/").status_code == 302

    response = client.post(f"/admin/login?next=/admin/posts/{post_id}",
                           data={"csrf_token": token, "username": "ann", "password": PASSWORD})
    assert response.status_code == 302 and response.location == f"/admin/posts/{post_id}"
    page = client.get("/admin/")
    assert page.status_code == 200 and b"ann" in page.data

    client.post("/admin/logout", data={"csrf_token": csrf_token(page.get_data(as_text=True))})
    assert client.get("/admin/").status_code == 302


def test_log_in_never_redirects_off_site(app, post_id):
    client = app.test_client()
    token = csrf_token(client.get("/admin/login").get_data(as_text=True))
    response = client.post("/admin/login?next=//evil.example/admin/",
                           data={"csrf_token": token, "username": "ann", "password": PASSWORD})
    assert response.location == "/admin/"
    for target in ("/admin/%0d%0aSet-Cookie:%20x=1", "/admin/\\evil.example", "/admin/%20x"):
        client = app.test_client()
        token = csrf_token(client.get("/admin/login").get_data(as_text=True))
        response = client.post(f"/admin/login?next={target}",
                               data={"csrf_token": token, "username": "ann", "password": PASSWORD})
        assert response.status_code == 302 and response.location == "/admin/", target


def test_forged_forms_without_a_valid_csrf_token_are_refused(app, post_id, sessions):
    client = app.test_client()
    # The log-in form itself needs the token.
    refused = client.post("/admin/login", data={"username": "ann", "password": PASSWORD})
    assert refused.status_code == 400
    log_in(client, "ann")
    html = client.get(f"/admin/posts/{post_id}").get_data(as_text=True)
    for token in (None, "forged", csrf_token(html)[:-2] + "xx"):
        form = _review_form(html, approve="Approve")
        form.pop("csrf_token") if token is None else form.update(csrf_token=token)
        response = client.post(f"/admin/posts/{post_id}/review", data=form)
        assert response.status_code == 400
        assert "csrf" in response.get_json()["message"].lower()
    assert _count(sessions, Review) == 0 and _count(sessions, ReviewStateChange) == 0
    # A token from another session (another browser) is no good either.
    other = app.test_client()
    log_in(other, "bob")
    response = other.post(f"/admin/posts/{post_id}/review", data=_review_form(html))
    assert response.status_code == 400
    assert _count(sessions, Review) == 0
    # The real form goes through.
    assert client.post(f"/admin/posts/{post_id}/review", data=_review_form(html)).status_code == 302
    assert _count(sessions, Review) == 1


def test_a_reviewer_cannot_overwrite_another_reviewers_review(app, post_id, sessions):
    ann, bob = app.test_client(), app.test_client()
    log_in(ann, "ann")
    log_in(bob, "bob")
    html = ann.get(f"/admin/posts/{post_id}").get_data(as_text=True)
    assert ann.post(f"/admin/posts/{post_id}/review", data=_review_form(html, note="ann's")).status_code == 302
    with sessions() as session:
        anns = session.scalars(select(Review)).one()

    html = bob.get(f"/admin/posts/{post_id}").get_data(as_text=True)
    forged = _review_form(html, base_review_id=str(anns.id), hashtag_relevant="no", note="bob's", approve="Approve")
    response = bob.post(f"/admin/posts/{post_id}/review", data=forged)
    assert response.status_code == 403
    with sessions() as session:
        assert session.scalars(select(Review)).one().note == "ann's"
        assert session.scalar(select(func.count()).select_from(ReviewStateChange)) == 1  # ann's "reviewed" only

    # Bob's own review is a separate row; ann's stays as it was.
    assert bob.post(f"/admin/posts/{post_id}/review", data=_review_form(html, note="bob's")).status_code == 302
    with sessions() as session:
        reviews = session.scalars(select(Review).order_by(Review.id)).all()
        assert [(r.reviewer.username, r.revision, r.note) for r in reviews] == [("ann", 1, "ann's"), ("bob", 1, "bob's")]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_sessions_expire(database_url, tmp_path, post_id):
    from hashtale.webhook import create_app

    app = create_app({"database_url": database_url, "media_dir": str(tmp_path / "media"),
                      "admin_session_minutes": SESSION_SECONDS / 60})
    client = app.test_client()
    log_in(client, "ann")
    assert client.get("/admin/").status_code == 200
    time.sleep(EXPIRY_WAIT)
    assert client.get("/admin/").status_code == 302


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_create_admin_command_stores_a_hash(database_url, sessions, monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO("a long enough password\n"))
    assert cli.main(["create-admin", "carol", "--password-stdin", "--database-url", database_url]) == 0
    assert "carol" in capsys.readouterr().out
    with sessions() as session:
        admin = session.scalars(select(Admin).where(Admin.username == "carol")).one()
    assert "a long enough password" not in admin.password_hash
    assert admin.password_hash.startswith(("scrypt:", "pbkdf2:"))

    monkeypatch.setattr("sys.stdin", io.StringIO("again password\n"))
    assert cli.main(["create-admin", "carol", "--password-stdin", "--database-url", database_url]) == 1
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert cli.main(["create-admin", "dave", "--password-stdin", "--database-url", database_url]) == 1
    assert "at least" in capsys.readouterr().err


FORMER_DEFAULT_KEY = "dev-only-change-me"  # the key every embedded install signed with before it was generated


def _forged_cookie(secret_key: str, admin_id: int) -> str:
    """A session cookie saying `admin_id` is logged in, signed the way Flask signs, with `secret_key`."""
    from flask import Flask

    forger = Flask("forger")
    forger.secret_key = secret_key
    return forger.session_interface.get_signing_serializer(forger).dumps({"admin_id": admin_id})


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_embedded_default_generates_its_key_once_and_a_forged_session_is_refused(database_url, tmp_path, post_id):
    from hashtale.settings.secret_key import KEY_FILE_NAME, MIN_LENGTH
    from hashtale.webhook import create_app

    config = {"database_url": database_url, "media_dir": str(tmp_path / "media")}  # no secret_key: the README's path
    app = create_app(config)
    key_file = tmp_path / KEY_FILE_NAME  # beside the SQLite file
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert app.secret_key == key_file.read_text() and len(app.secret_key) >= MIN_LENGTH
    assert create_app(config).secret_key == app.secret_key  # every process and restart: the same key

    client = app.test_client()
    client.set_cookie("session", _forged_cookie(FORMER_DEFAULT_KEY, admin_id=1))
    assert client.get("/admin/").status_code == 302  # to the log-in page
    log_in(client, "ann")
    assert client.get("/admin/").status_code == 200


def test_a_deployment_without_a_usable_secret_key_refuses_to_start(tmp_path):
    from hashtale.settings.secret_key import MissingSecretKey
    from hashtale.webhook import create_app

    pg_url = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
    with pytest.raises(MissingSecretKey, match="SECRET_KEY"):
        create_app({"database_url": pg_url, "media_dir": str(tmp_path)})
    with pytest.raises(MissingSecretKey, match="at least"):
        create_app({"database_url": pg_url, "media_dir": str(tmp_path), "secret_key": FORMER_DEFAULT_KEY})


def test_the_secret_key_can_come_from_a_file(tmp_path):
    from hashtale.settings import Settings

    secret = tmp_path / "secret_key"
    secret.write_text("k" * 40 + "\n")
    assert Settings.from_env({"SECRET_KEY_FILE": str(secret)}).secret_key == "k" * 40
    assert Settings.from_env({"SECRET_KEY_FILE": str(secret), "SECRET_KEY": "env wins"}).secret_key == "env wins"


def _attempt(client, username: str, password: str, address: str) -> int:
    token = csrf_token(client.get("/admin/login").get_data(as_text=True))
    response = client.post("/admin/login", data={"csrf_token": token, "username": username, "password": password},
                           environ_base={"REMOTE_ADDR": address})
    return response.status_code


def test_failed_log_ins_are_throttled_per_address_and_per_username(database_url, tmp_path, post_id):
    from hashtale.webhook import create_app
    from hashtale.webhook.throttle import MEMORY_STORAGE, storage_uri

    app = create_app({"database_url": database_url, "media_dir": str(tmp_path / "media"),
                      "secret_key": "k" * 40, "login_rate_limit": "3 per minute"})
    assert storage_uri(app.config["SETTINGS"]) == MEMORY_STORAGE  # an SQLite broker: per-process counts
    client = app.test_client()
    assert [_attempt(client, "ann", "wrong password", "10.0.0.1") for _ in range(4)] == [401, 401, 401, 429]
    assert _attempt(client, "bob", PASSWORD, "10.0.0.1") == 429  # this address is locked out, even for bob
    assert _attempt(client, "ann", PASSWORD, "10.0.0.2") == 429  # so is ann's account, from any address
    assert _attempt(client, "bob", PASSWORD, "10.0.0.2") == 302  # successes are never counted
    assert _attempt(client, "bob", PASSWORD, "10.0.0.2") == 302


def test_log_in_failures_are_counted_in_redis_when_the_broker_is_redis():
    from hashtale.settings import Settings
    from hashtale.webhook.throttle import storage_uri

    assert storage_uri(Settings(broker_url="redis://redis:6379/0")) == "redis://redis:6379/0"
    assert storage_uri(Settings(broker_url="redis://r/0", ratelimit_storage_url="redis://other/1")) == "redis://other/1"


def test_log_out_revokes_the_session_server_side(app, post_id):
    client = app.test_client()
    log_in(client, "ann")
    page = client.get("/admin/")
    stolen = client.get_cookie("session").value  # a copy of the cookie, e.g. taken from the browser
    other_device = app.test_client()
    log_in(other_device, "ann")
    assert other_device.get("/admin/").status_code == 200  # a second log-in keeps the first session valid

    client.post("/admin/logout", data={"csrf_token": csrf_token(page.get_data(as_text=True))})
    replay = app.test_client()
    replay.set_cookie("session", stolen)
    assert replay.get("/admin/").status_code == 302
    assert other_device.get("/admin/").status_code == 302  # log-out ends every session of the admin
    log_in(replay, "ann")
    assert replay.get("/admin/").status_code == 200


def test_every_response_carries_the_security_headers(app, post_id):
    from hashtale.webhook.headers import SECURITY_HEADERS

    client = app.test_client()
    log_in(client, "ann")
    for path in ("/admin/", f"/admin/posts/{post_id}", "/admin/login", "/admin/static/admin.js", "/posts/999",
                 "/webhook", "/nowhere"):
        response = client.get(path)
        for name, value in SECURITY_HEADERS.items():
            assert response.headers[name] == value, (path, name)
    page = client.get(f"/admin/posts/{post_id}").get_data(as_text=True)
    assert "<script>" not in page and " style=" not in page  # the policy allows no inline script or style


def test_redirects_never_take_their_host_from_the_request(app, post_id):
    response = app.test_client().get("/admin?page=2", headers={"Host": "evil.example"})
    assert response.status_code == 308 and response.headers["Location"] == "/admin/?page=2"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_trusted_hosts_and_secure_cookies(database_url, tmp_path, post_id):
    from hashtale.webhook import create_app

    app = create_app({"database_url": database_url, "media_dir": str(tmp_path / "media"), "secret_key": "k" * 40,
                      "trusted_hosts": "hooks.example.com, localhost", "secure_cookies": True})
    client = app.test_client()
    assert client.get("/admin/login", headers={"Host": "evil.example"}).status_code == 400
    assert client.post("/webhook", headers={"Host": "evil.example"}).status_code == 400
    assert client.get("/admin/login", headers={"Host": "hooks.example.com"}).status_code == 200
    token = csrf_token(client.get("/admin/login", base_url="https://localhost").get_data(as_text=True))
    response = client.post("/admin/login", base_url="https://localhost",
                           data={"csrf_token": token, "username": "ann", "password": PASSWORD})
    assert response.status_code == 302
    assert "; Secure" in response.headers["Set-Cookie"]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_deployment_can_leave_the_admin_pages_out(database_url, tmp_path):
    from hashtale.webhook import create_app

    app = create_app({"database_url": database_url, "media_dir": str(tmp_path / "media"), "admin_enabled": False})
    client = app.test_client()
    assert client.get("/admin/").status_code == 404 and client.get("/admin/login").status_code == 404
    assert client.get("/healthz").status_code == 200


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_with_a_redis_broker_every_process_shares_the_log_in_counts(database_url, tmp_path, post_id, redis_url):
    import uuid

    from hashtale.webhook import create_app

    config = {"database_url": database_url, "media_dir": str(tmp_path / "media"), "secret_key": "k" * 40,
              "broker_url": redis_url, "login_rate_limit": "2 per minute"}
    # Counts in Redis outlive the test: an address and a username of this run only.
    address, username = f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.1", f"nobody-{uuid.uuid4().hex}"
    first = create_app(config).test_client()  # two gunicorn workers, say
    assert [_attempt(first, username, "wrong password", address) for _ in range(2)] == [401, 401]
    second = create_app(config).test_client()
    assert _attempt(second, username, "wrong password", address) == 429


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_client_address_comes_from_a_proxy_only_when_one_is_trusted(database_url, tmp_path, post_id):
    from hashtale.webhook import create_app

    def attempts(trusted_proxies: int) -> list[int]:
        app = create_app({"database_url": database_url, "media_dir": str(tmp_path / "media"), "secret_key": "k" * 40,
                          "login_rate_limit": "1 per minute", "trusted_proxies": trusted_proxies})
        client = app.test_client()
        statuses = []
        for n, forwarded in enumerate(["203.0.113.1", "203.0.113.2"]):
            token = csrf_token(client.get("/admin/login").get_data(as_text=True))
            statuses.append(client.post("/admin/login", headers={"X-Forwarded-For": forwarded},
                                        data={"csrf_token": token, "username": f"user{n}", "password": "wrong"},
                                        environ_base={"REMOTE_ADDR": "10.0.0.9"}).status_code)
        return statuses

    assert attempts(trusted_proxies=0) == [401, 429]  # a forged header does not make a new client
    assert attempts(trusted_proxies=1) == [401, 401]  # behind a proxy: two clients
