"""`hashtale export-reviews`: approved, corrected hashtags as a HARRISON split that `train-hashtagger` accepts."""
from __future__ import annotations

import os

import pytest

from hashtale import cli
from hashtale.db.reviews import Admin, Closeness, ReviewState
from hashtale.review.history import ReviewAnswers, submit_review
from tests.support.admin import add_admin, add_post
from hashtale.training.harrison import read_split

TAGS = ["food", "coffee", "cafe"]


def _staging_folders(folder) -> list[str]:
    return [name for name in os.listdir(folder) if name.startswith(".")]


def _answers(tags: tuple[str, ...], decision: ReviewState | None) -> ReviewAnswers:
    return ReviewAnswers(hashtag_relevant=True, story_meaningful=True, story_closeness=Closeness.SLIGHT,
                         relevant_ranks=frozenset({1}), tags=tags, note=None, decision=decision)


def _seed(sessions, media_dir, photos) -> dict[int, list[str]]:
    """Posts in every review situation; returns what the export must hold: post id -> hashtags."""
    expected = {}
    with sessions.begin() as session:
        ann, bob = (session.get(Admin, add_admin(session, name)) for name in ("ann", "bob"))

        def post(n):
            return add_post(session, media_dir, photos[n].read_bytes(), n, TAGS)

        for n in range(6):  # approved, some corrected: a suggested tag removed, one added
            p = post(n)
            tags = ("food", "coffee", "latte") if n % 2 else tuple(TAGS)
            submit_review(session, p, ann, _answers(tags, ReviewState.APPROVED), None)
            expected[p.id] = list(tags)
        submit_review(session, post(6), ann, _answers(("food",), None), None)  # reviewed, not approved
        p = post(7)  # approved, then rejected
        first = submit_review(session, p, ann, _answers(("food",), ReviewState.APPROVED), None)
        submit_review(session, p, ann, _answers(("food",), ReviewState.REJECTED), first.id)
        p = post(8)  # rejected by ann, then approved by bob with his tags
        submit_review(session, p, ann, _answers(("cafe",), ReviewState.REJECTED), None)
        submit_review(session, p, bob, _answers(("coffee", "espresso"), ReviewState.APPROVED), None)
        expected[p.id] = ["coffee", "espresso"]
        submit_review(session, post(9), ann, _answers((), ReviewState.APPROVED), None)  # no tag left: skipped
    return expected


def test_export_writes_approved_corrected_hashtags(database_url, sessions, tmp_path, photo_paths):
    media = tmp_path / "media"
    expected = _seed(sessions, media, photo_paths)
    out = tmp_path / "split"
    argv = ["export-reviews", str(out), "--database-url", database_url, "--media-dir", str(media)]
    assert cli.main(argv) == 0

    lines = (out / "data_list.txt").read_text().splitlines()
    assert lines == [f"images/{post_id}.jpg" for post_id in sorted(expected)]  # relative to the split folder
    assert not any((out / line).is_symlink() for line in lines)  # copies by default
    examples = read_split(out)
    assert [e.tags for e in examples] == [expected[post_id] for post_id in sorted(expected)]
    for example, post_id in zip(examples, sorted(expected)):
        assert example.image.read_bytes() == photo_paths[post_id - 1].read_bytes()
    assert _staging_folders(tmp_path) == []

    assert cli.main(argv) == 1  # never writes into an existing folder
    linked = tmp_path / "linked"
    assert cli.main(["export-reviews", str(linked), "--link", "--database-url", database_url,
                     "--media-dir", str(media)]) == 0
    images = [linked / line for line in (linked / "data_list.txt").read_text().splitlines()]
    assert len(images) == len(expected) and all(image.is_symlink() and image.exists() for image in images)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_failed_export_leaves_nothing(database_url, sessions, tmp_path, photo_paths):
    _seed(sessions, tmp_path / "media", photo_paths)
    out = tmp_path / "split"
    with pytest.raises(FileNotFoundError):
        cli.main(["export-reviews", str(out), "--database-url", database_url, "--media-dir", str(tmp_path / "gone")])
    assert not out.exists() and _staging_folders(tmp_path) == []


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_export_trains_the_hashtagger(database_url, sessions, tmp_path, photo_paths):
    media = tmp_path / "media"
    _seed(sessions, media, photo_paths)
    split, run = tmp_path / "split", tmp_path / "run"
    assert cli.main(["export-reviews", str(split), "--database-url", database_url, "--media-dir", str(media)]) == 0
    tiny = ["--epochs", "1", "--batch-size", "4", "--embed-dim", "8", "--hidden-dim", "16", "--attention-dim", "8",
            "--patience", "1"]
    assert cli.main(["train-hashtagger", "--data", str(split), "--out", str(run), "--store", str(tmp_path / "features"),
                     *tiny]) == 0
    from hashtale.models.checkpoint import load_checkpoint
    from hashtale.models.hashtagger_runtime import CHECKPOINT_KIND

    checkpoint = load_checkpoint(run / "last.pt", kind=CHECKPOINT_KIND)
    assert checkpoint["step"] == 1
    assert {"latte", "espresso", "coffee"} <= set(checkpoint["vocab"])  # the reviewers' corrections are learnt
