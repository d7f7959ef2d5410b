"""The schema: migrations match the ORM on both databases, the post state machine holds."""
from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from hashtale import db
from hashtale.db import Post, PostStatus, make_engine, migrate
from hashtale.db.schema import TRANSITIONS, InvalidTransition
from tests.support.databases import scratch_pg_database


@pytest.fixture(params=["sqlite", "postgresql"])
def migrated_url(request, tmp_path):
    url = f"sqlite:///{tmp_path / 'm.sqlite'}" if request.param == "sqlite" else request.getfixturevalue("pg_url")
    migrate(url)
    return url


def test_migrations_match_the_orm(migrated_url):
    engine = make_engine(migrated_url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": False}), db.Base.metadata)
    engine.dispose()
    assert diff == []


def test_migrate_is_idempotent(migrated_url):
    migrate(migrated_url)
    engine = make_engine(migrated_url)
    assert {"posts", "hashtags", "stories"} <= set(inspect(engine).get_table_names())
    engine.dispose()


def _post(status: PostStatus) -> Post:
    return Post(external_id="x", image_sha256="0" * 64, image_path="p", image_format="JPEG", width=1, height=1,
                status=status)


def test_happy_path_transitions():
    post = _post(PostStatus.RECEIVED)
    for status in (PostStatus.TAGGING, PostStatus.TAGGED, PostStatus.WRITING, PostStatus.DONE):
        post.move_to(status)
    assert post.status is PostStatus.DONE


@pytest.mark.parametrize("start", list(PostStatus))
def test_every_disallowed_transition_is_refused(start):
    for target in PostStatus:
        post = _post(start)
        if target in TRANSITIONS[start]:
            post.move_to(target)
            assert post.status is target
        else:
            with pytest.raises(InvalidTransition):
                post.move_to(target)
            assert post.status is start


def test_every_non_final_state_can_fail():
    for start in set(PostStatus) - db.FINAL_STATUSES:
        assert PostStatus.FAILED in TRANSITIONS[start]


def test_migrate_goes_down_and_up_and_says_where_it_is(migrated_url, capsys):
    from alembic.script import ScriptDirectory

    from hashtale import cli
    from hashtale.db.session import alembic_config, current_revision

    head = ScriptDirectory.from_config(alembic_config(migrated_url)).get_current_head()
    assert current_revision(migrated_url) == head
    assert cli.main(["migrate", "--revision", "0001", "--database-url", migrated_url]) == 0
    assert capsys.readouterr().out.rstrip().endswith("is at 0001")
    engine = make_engine(migrated_url)
    assert "reviews" not in inspect(engine).get_table_names() and "posts" in inspect(engine).get_table_names()
    engine.dispose()
    assert cli.main(["migrate", "--revision", "0001", "--database-url", migrated_url]) == 0  # already there
    assert cli.main(["migrate", "--database-url", migrated_url]) == 0
    assert capsys.readouterr().out.rstrip().endswith(f"is at {head}")
    assert cli.main(["migrate", "--revision", "no-such-revision", "--database-url", migrated_url]) == 2
    assert current_revision(migrated_url) == head


def test_the_alembic_cli_works_from_the_checkout(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    from hashtale.settings import PROJECT_ROOT

    url = f"sqlite:///{tmp_path / 'cli.sqlite'}"
    alembic = [str(Path(sys.executable).parent / "alembic"), "-c", str(PROJECT_ROOT / "alembic.ini")]
    env = {**os.environ, "DATABASE_URL": url}
    for args in (["upgrade", "head"], ["downgrade", "0001"]):
        subprocess.run(alembic + args, cwd=tmp_path, env=env, check=True, capture_output=True, timeout=120)
    current = subprocess.run(alembic + ["current"], cwd=tmp_path, env=env, check=True, capture_output=True,
                             text=True, timeout=120)
    assert current.stdout.split() == ["0001"]


def test_migrations_downgrade_and_upgrade_again(migrated_url):
    from alembic import command

    from hashtale.db.session import alembic_config

    command.downgrade(alembic_config(migrated_url), "0002")
    engine = make_engine(migrated_url)
    assert "session_nonce" not in {c["name"] for c in inspect(engine).get_columns("admins")}
    engine.dispose()
    migrate(migrated_url)
    engine = make_engine(migrated_url)
    assert "session_nonce" in {c["name"] for c in inspect(engine).get_columns("admins")}


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_0003_keeps_old_stories_and_downgrades(backend, tmp_path):
    """Stories written before 0003 get their seed hashtag as their set; the downgrade drops the column."""
    if backend == "sqlite":
        _check_0003(f"sqlite:///{tmp_path / 'm.sqlite'}")
        return
    with scratch_pg_database("hashtale_test_0003") as (_name, url):
        _check_0003(url)


def _check_0003(url: str) -> None:
    from alembic import command
    from sqlalchemy import text

    from hashtale.db.session import alembic_config

    migrate(url, "0002")
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO posts (id, external_id, image_sha256, image_path, image_format, width, height, "
                          "status, attempts, created_at, updated_at) VALUES (1, 'x', :sha, 'p', 'JPEG', 1, 1, 'done', 0, "
                          ":now, :now)"), {"sha": "0" * 64, "now": "2026-11-30 00:00:00"})
        conn.execute(text("INSERT INTO stories (post_id, seed_hashtag, text, length, temperature, top_k, random_seed, "
                          "model_name, model_version, created_at) VALUES (1, 'beach', 'A story.', 500, 0.8, 20, 7, "
                          "'m', 'v', :now)"), {"now": "2026-11-30 00:00:00"})
    migrate(url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT hashtags FROM stories")).scalar_one() in (["beach"], '["beach"]')
    command.downgrade(alembic_config(url), "0002")
    assert "hashtags" not in {c["name"] for c in inspect(engine).get_columns("stories")}
    migrate(url)
    engine.dispose()
