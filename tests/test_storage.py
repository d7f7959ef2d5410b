"""The media store (content-addressed, atomic, locked) and the file's fate when the post's commit fails."""
from __future__ import annotations

import hashlib
import multiprocessing
import threading
import uuid

import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError

from hashtale.db import make_engine, make_session_factory
from hashtale.models.image import decode_image
from tests.support.images import encoded
from hashtale.webhook.ingest import Delivery, store_post
from hashtale.webhook.storage import LOCK_DIR, TEMP_PREFIX, MediaStore

REFUSED_CAPTION = "refused by the database"
LOCK_WAIT = 0.5  # seconds the test gives a blocked locker to (wrongly) get through
UNREACHABLE_PG = "postgresql+psycopg://postgres@127.0.0.1:1/nothing"  # port 1: connection refused at once


def test_put_writes_the_bytes_once_under_their_hash(tmp_path):
    store = MediaStore(tmp_path)
    data = encoded("JPEG", seed=1)
    sha = hashlib.sha256(data).hexdigest()
    relative = store.relative_path(sha, "JPEG")
    assert relative == f"{sha[:2]}/{sha[2:4]}/{sha}.jpg"
    with store.locked(sha):
        assert store.put(relative, data) is True
        assert store.put(relative, data) is False  # already there: same name, same bytes
    assert store.absolute(relative).read_bytes() == data
    assert [p.name for p in store.absolute(relative).parent.iterdir()] == [f"{sha}.jpg"]  # no temp file left
    store.remove(relative)
    assert not store.absolute(relative).exists()
    store.remove(relative)  # removing twice is fine


def test_a_failed_write_leaves_neither_file_nor_temp(tmp_path):
    store = MediaStore(tmp_path)
    relative = store.relative_path("ab" * 32, "PNG")
    with pytest.raises(TypeError), store.locked("ab" * 32):
        store.put(relative, "not bytes")  # the write itself fails, after the temp file was opened
    folder = store.absolute(relative).parent
    assert not store.absolute(relative).exists()
    assert not any(p.name.startswith(TEMP_PREFIX) for p in folder.iterdir())


def _hold_lock(root, sha, held, release):
    with MediaStore(root).locked(sha):
        held.set()
        release.wait()


def test_the_lock_excludes_other_processes_for_the_same_stripe_only(tmp_path):
    sha = "cd" * 32
    ctx = multiprocessing.get_context("fork")  # the child needs nothing but the store
    held, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold_lock, args=(tmp_path, sha, held, release))
    holder.start()
    try:
        assert held.wait(30)
        store = MediaStore(tmp_path)
        with store.locked("ef" * 32):  # another stripe: not blocked
            pass
        got_it = threading.Event()

        def lock_same():
            with store.locked(sha):
                got_it.set()

        waiter = threading.Thread(target=lock_same)
        waiter.start()
        assert not got_it.wait(LOCK_WAIT)  # blocked while the other process holds the stripe
        release.set()
        assert got_it.wait(30)
        waiter.join()
    finally:
        release.set()
        holder.join(30)
        if holder.is_alive():
            holder.kill()
    assert (tmp_path / LOCK_DIR / f"{sha[:2]}.lock").exists()


# --- the file's fate when the post's commit fails (real databases, refusing for real) ----------------------

def _refuse_some_inserts(engine) -> None:
    """A trigger that makes the database refuse posts with REFUSED_CAPTION (an IntegrityError)."""
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            conn.execute(text(
                f"CREATE TRIGGER refuse_post BEFORE INSERT ON posts WHEN NEW.caption = '{REFUSED_CAPTION}' "
                "BEGIN SELECT RAISE(ABORT, 'refused by test trigger'); END"))
        else:
            conn.execute(text(
                "CREATE FUNCTION refuse_post() RETURNS trigger AS $$ BEGIN "
                f"IF NEW.caption = '{REFUSED_CAPTION}' THEN "
                "RAISE EXCEPTION 'refused by test trigger' USING ERRCODE = 'check_violation'; END IF; "
                "RETURN NEW; END $$ LANGUAGE plpgsql"))
            conn.execute(text("CREATE TRIGGER refuse_post BEFORE INSERT ON posts FOR EACH ROW EXECUTE FUNCTION refuse_post()"))


def _read_only(engine) -> None:
    """Every later connection may read but not write (a non-integrity failure of the INSERT)."""
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", lambda dbapi_conn, _: dbapi_conn.execute("PRAGMA query_only = ON"))
    else:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text(f'ALTER DATABASE "{engine.url.database}" SET default_transaction_read_only = on'))
    engine.dispose()


def _delivery(data: bytes, caption: str | None = None) -> Delivery:
    return Delivery(image=data, external_id=f"ext-{uuid.uuid4().hex}", caption=caption, author=None)


@pytest.fixture
def engine(database_url):
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


def test_stored_post_points_to_its_file(engine, tmp_path):
    store, sessions = MediaStore(tmp_path / "media"), make_session_factory(engine)
    data = encoded("PNG")
    with sessions() as session:
        post, duplicate = store_post(session, store, _delivery(data), decode_image(data))
    assert not duplicate and post.id is not None
    assert store.absolute(post.image_path).read_bytes() == data
    assert (post.width, post.height, post.image_format) == (64, 48, "PNG")


@pytest.mark.parametrize("refuse", [_refuse_some_inserts, _read_only], ids=["constraint", "read-only"])
def test_a_refused_commit_removes_the_new_file(engine, tmp_path, refuse):
    store, sessions = MediaStore(tmp_path / "media"), make_session_factory(engine)
    refuse(engine)
    data = encoded("JPEG")
    with sessions() as session, pytest.raises(SQLAlchemyError):
        store_post(session, store, _delivery(data, REFUSED_CAPTION), decode_image(data))
    assert not store.absolute(store.relative_path(hashlib.sha256(data).hexdigest(), "JPEG")).exists()


def test_a_refused_commit_keeps_a_file_another_post_uses(engine, tmp_path):
    store, sessions = MediaStore(tmp_path / "media"), make_session_factory(engine)
    _refuse_some_inserts(engine)
    data = encoded("WEBP")
    with sessions() as session:
        first, _ = store_post(session, store, _delivery(data), decode_image(data))
    with sessions() as session, pytest.raises(IntegrityError):
        store_post(session, store, _delivery(data, REFUSED_CAPTION), decode_image(data))
    assert store.absolute(first.image_path).read_bytes() == data


def test_a_redelivery_with_another_photo_leaves_no_file_behind(engine, tmp_path):
    store, sessions = MediaStore(tmp_path / "media"), make_session_factory(engine)
    original, other = encoded("JPEG"), encoded("JPEG")
    delivery = _delivery(original)
    with sessions() as session:
        first, _ = store_post(session, store, delivery, decode_image(original))
    again = Delivery(image=other, external_id=delivery.external_id, caption=None, author=None)
    with sessions() as session:
        post, duplicate = store_post(session, store, again, decode_image(other))
    assert duplicate and post.id == first.id and post.image_sha256 == first.image_sha256
    files = [p for p in (tmp_path / "media").rglob("*.jpg")]
    assert files == [store.absolute(first.image_path)]


def test_with_the_database_down_nothing_is_written(tmp_path):
    store, engine = MediaStore(tmp_path / "media"), make_engine(UNREACHABLE_PG)
    data = encoded("JPEG")
    with make_session_factory(engine)() as session, pytest.raises(OperationalError):
        store_post(session, store, _delivery(data), decode_image(data))
    assert not store.absolute(store.relative_path(hashlib.sha256(data).hexdigest(), "JPEG")).exists()
    engine.dispose()


def test_gc_media_removes_only_files_no_post_references(engine, database_url, tmp_path, monkeypatch, capsys):
    import os

    from hashtale import cli

    store, sessions = MediaStore(tmp_path / "media"), make_session_factory(engine)
    used = encoded("PNG")
    with sessions() as session:
        post, _ = store_post(session, store, _delivery(used), decode_image(used))
    orphan = encoded("JPEG")  # what a commit failing with the database gone leaves behind
    orphan_sha = hashlib.sha256(orphan).hexdigest()
    orphan_path = store.relative_path(orphan_sha, "JPEG")
    with store.locked(orphan_sha):
        store.put(orphan_path, orphan)
    stale_temp = store.absolute(orphan_path).with_name(TEMP_PREFIX + "dead.jpg")  # a writer killed mid-write
    stale_temp.write_bytes(b"half a photo")
    os.utime(stale_temp, (0, 0))

    monkeypatch.setenv("DATABASE_URL", database_url)
    assert cli.main(["gc-media", "--media-dir", str(tmp_path / "media")]) == 0
    assert "2 files removed, 1 photos in use" in capsys.readouterr().out
    assert store.absolute(post.image_path).read_bytes() == used
    assert not store.absolute(orphan_path).exists() and not stale_temp.exists()
