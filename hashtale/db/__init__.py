"""Database access: schema, engines and sessions, migrations."""
from hashtale.db.schema import FINAL_STATUSES, Base, Hashtag, InvalidTransition, Post, PostStatus, Story
from hashtale.db import reviews  # noqa: F401  (registers the review tables on Base.metadata)
from hashtale.db.session import make_engine, make_session_factory, migrate

__all__ = [
    "Base", "FINAL_STATUSES", "Hashtag", "InvalidTransition", "Post", "PostStatus", "Story",
    "make_engine", "make_session_factory", "migrate",
]
