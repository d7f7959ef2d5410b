"""Reviewing through the admin pages: append-only history, review state, the queue's filters, heat maps."""
from __future__ import annotations

import io
from datetime import timedelta

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import func, select

from hashtale.db.reviews import Closeness, Review, ReviewState, ReviewStateChange, TagChange
from hashtale.db.schema import PostStatus
from hashtale.review.queue import PAGE_SIZE
from tests.support.admin import GRID, T0, add_admin, add_post, csrf_token, log_in
from tests.support.webhook import read_url
from hashtale.webhook.admin.heatmap import overlay_size, seen_square


@pytest.fixture
def post_id(sessions, tmp_path, coffee_jpeg) -> int:
    with sessions.begin() as session:
        add_admin(session, "ann")
        return add_post(session, tmp_path / "media", coffee_jpeg, 1, ["coffee", "cup", "food"],
                        story="A cup of coffee on a saucer.").id


@pytest.fixture
def client(app, post_id):
    client = app.test_client()
    log_in(client, "ann")
    return client


def _submit(client, post_id, **fields):
    html = client.get(f"/admin/posts/{post_id}").get_data(as_text=True)
    base = {"csrf_token": csrf_token(html), "hashtag_relevant": "yes", "story_meaningful": "yes",
            "story_closeness": "strong", "tags": "coffee cup food", "save": "Save review"}
    base.update(_base_review_id(html))
    base.update(fields)
    return client.post(f"/admin/posts/{post_id}/review", data=base)


def _base_review_id(html: str) -> dict:
    marker = 'id="base_review_id" name="base_review_id" type="hidden" value="'
    start = html.index(marker) + len(marker)
    value = html[start:html.index('"', start)]
    return {"base_review_id": value} if value else {}


def test_post_page_shows_photo_hashtags_scores_heat_maps_and_story(client, post_id, tmp_path, coffee_jpeg):
    html = client.get(f"/admin/posts/{post_id}").get_data(as_text=True)
    photo_url = read_url(client.application, post_id, image=True)
    assert f'src="{photo_url}"' in html
    for rank, text in enumerate(["coffee", "cup", "food"], start=1):
        assert f"#{text}" in html
        assert f'src="/admin/posts/{post_id}/heatmaps/{rank}.png"' in html
    assert "0.900" in html and "0.450" in html  # scores of ranks 1 and 2
    assert "A cup of coffee on a saucer." in html
    assert client.get(photo_url).data == coffee_jpeg
    heat = client.get(f"/admin/posts/{post_id}/heatmaps/2.png")
    assert heat.status_code == 200 and heat.content_type == "image/png"
    photo = Image.open(io.BytesIO(coffee_jpeg))
    overlay = Image.open(io.BytesIO(heat.data))
    # An overlay of the whole photo, laid over it at its display size: the same aspect ratio, long side capped.
    assert overlay.mode == "RGBA" and overlay.size == overlay_size(*photo.size)
    assert abs(overlay.width / overlay.height - photo.width / photo.height) < 0.01
    assert 'class="heatmap" id="heatmap-1"' in html and f'width="{photo.width}" height="{photo.height}"' in html
    assert client.get(f"/admin/posts/{post_id}/heatmaps/9.png").status_code == 404
    assert client.get("/admin/posts/999999").status_code == 404


def test_heat_map_is_hot_where_the_attention_is(client, sessions, tmp_path, coffee_jpeg):
    top_left = np.zeros(GRID[0] * GRID[1])
    top_left[0] = 1.0  # all attention on the top-left cell
    with sessions.begin() as session:
        post = add_post(session, tmp_path / "media", coffee_jpeg, 2, ["cup"])
        post.hashtags[0].attention = top_left.tolist()
        post_id = post.id
    rgba = np.asarray(Image.open(io.BytesIO(client.get(f"/admin/posts/{post_id}/heatmaps/1.png").data)), dtype=float)
    left, top, side = seen_square(rgba.shape[1], rgba.shape[0])
    seen = rgba[top:top + side, left:left + side]  # the square the model saw
    cell = side // GRID[0]
    hot, cold = seen[: cell // 2, : cell // 2], seen[-cell:, -cell:]
    assert hot[..., 0].mean() - hot[..., 2].mean() > 50  # red over the attended cell
    assert cold[..., 2].mean() - cold[..., 0].mean() > 20  # blue far from it
    unseen = np.concatenate([rgba[:, :left].reshape(-1, 4), rgba[:, left + side:].reshape(-1, 4)])
    assert len(unseen) and np.ptp(unseen[:, :3]) == 0  # the strips the model did not see: one flat grey


def test_reviews_are_appended_never_overwritten(client, post_id, sessions):
    response = _submit(client, post_id, relevant=["1", "3"], tags="#Latte, cup", note="first", approve="Approve")
    assert response.status_code == 302
    with sessions() as session:
        review = session.scalars(select(Review)).one()
        assert (review.revision, review.hashtag_relevant, review.story_meaningful, review.story_closeness) == (
            1, True, True, Closeness.STRONG)
        assert review.hashtag_model == "sat-effnetlite0:v1" and review.story_model == "char-lstm:v1"
        assert [(v.rank, v.text, v.relevant) for v in review.verdicts] == [
            (1, "coffee", True), (2, "cup", False), (3, "food", True)]
        assert {(c.text, c.change) for c in review.tag_changes} == {("latte", TagChange.ADDED)}
        assert review.corrected_tags() == ["coffee", "cup", "food", "latte"]  # ticked 1 and 3, typed latte and cup
        assert [s.state for s in session.scalars(select(ReviewStateChange))] == [ReviewState.APPROVED]
        first = (review.id, review.created_at, review.note)

    # A plain save of an approved post keeps it approved; the first revision stays as it was.
    assert _submit(client, post_id, hashtag_relevant="no", story_closeness="none", note="second").status_code == 302
    assert _submit(client, post_id, note="third", reject="Reject").status_code == 302
    with sessions() as session:
        reviews = session.scalars(select(Review).order_by(Review.id)).all()
        assert [(r.revision, r.note) for r in reviews] == [(1, "first"), (2, "second"), (3, "third")]
        assert (reviews[0].id, reviews[0].created_at, reviews[0].note) == first
        assert reviews[1].story_closeness is Closeness.NONE and reviews[1].hashtag_relevant is False
        changes = session.scalars(select(ReviewStateChange).order_by(ReviewStateChange.id)).all()
        assert [(c.state, c.review_id) for c in changes] == [
            (ReviewState.APPROVED, reviews[0].id), (ReviewState.REJECTED, reviews[2].id)]
    page = client.get(f"/admin/posts/{post_id}").get_data(as_text=True)
    assert 'id="review-state">rejected<' in page
    assert page.count("<td>ann</td>") == 3  # the history lists every revision


def test_a_stale_form_is_refused(client, post_id, sessions):
    html = client.get(f"/admin/posts/{post_id}").get_data(as_text=True)
    form = {"csrf_token": csrf_token(html), "hashtag_relevant": "yes", "story_meaningful": "no",
            "story_closeness": "none"}
    assert client.post(f"/admin/posts/{post_id}/review", data=form).status_code == 302
    # The same (now outdated) form again, e.g. from a second tab: nothing is written.
    assert client.post(f"/admin/posts/{post_id}/review", data=form).status_code == 409
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Review)) == 1


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("fields, message", [
    ({"hashtag_relevant": ""}, "is the hashtag relevant to the image"),
    ({"story_closeness": ""}, "both questions"),
    ({"story_closeness": "very"}, "not a valid choice"),
    ({"tags": "good tag-with-dash"}, "not a hashtag"),
    ({"relevant": ["7"]}, "not a valid choice"),
    ({"relevant": ["\u0661"]}, "invalid choice"),  # ARABIC-INDIC DIGIT ONE: int() would take it
    ({"relevant": ["9" * 30]}, "invalid choice"),
    ({"base_review_id": "\u00b2"}, "base_review_id"),  # SUPERSCRIPT TWO: isdigit() but not int()
    ({"base_review_id": "9" * 30}, "base_review_id"),
])
def test_incomplete_or_bad_reviews_write_nothing(client, post_id, sessions, fields, message):
    response = _submit(client, post_id, **fields)
    assert response.status_code == 400
    assert message in response.get_data(as_text=True).lower()
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Review)) == 0
        assert session.scalar(select(func.count()).select_from(ReviewStateChange)) == 0


def test_queue_filters_and_pages(client, sessions, tmp_path, coffee_jpeg):
    total = PAGE_SIZE + 12  # the post fixture's post #1 plus these
    with sessions.begin() as session:
        admin_id = add_admin(session, "bob")
        posts = [add_post(session, tmp_path / "media", coffee_jpeg, n, ["beach" if n % 3 == 0 else "cat", "sun"],
                          status=PostStatus.FAILED if n % 10 == 0 else PostStatus.DONE)
                 for n in range(2, total + 1)]
        for post in posts[:5]:
            review = Review(post_id=post.id, reviewer_id=admin_id, revision=1, hashtag_relevant=True)
            session.add(ReviewStateChange(post_id=post.id, state=ReviewState.REVIEWED, admin_id=admin_id,
                                          review=review))
        # Approved later: its newest state counts.
        session.add(ReviewStateChange(post_id=posts[0].id, state=ReviewState.APPROVED, admin_id=admin_id))

    def rows(query: str) -> tuple[int, list[int]]:
        response = client.get("/admin/" + query)
        assert response.status_code == 200
        html = response.get_data(as_text=True)
        ids = [int(part.split('"')[0]) for part in html.split('data-href="/admin/posts/')[1:]]
        count = int(html.split('<p class="count">')[1].split(" ")[0])
        return count, ids

    count, ids = rows("")
    assert count == total and len(ids) == PAGE_SIZE and ids[0] == total  # newest first
    count, ids = rows("?page=2")
    assert len(ids) == total - PAGE_SIZE and ids[-1] == 1
    assert rows("?status=failed")[0] == len([n for n in range(2, total + 1) if n % 10 == 0])
    assert rows("?tag=%23Beach")[0] == len([n for n in range(2, total + 1) if n % 3 == 0])
    assert rows("?review=reviewed")[1] == sorted((p.id for p in posts[1:5]), reverse=True)
    assert rows("?review=approved")[1] == [posts[0].id]
    assert rows("?review=unreviewed")[0] == total - 5
    day = (T0 + timedelta(minutes=total)).date()  # posts are a minute apart from T0 = 12:00
    assert rows(f"?since={day}&until={day}")[0] == total
    assert rows(f"?until={day - timedelta(days=1)}")[0] == 0
    assert rows("?status=done&tag=sun&review=unreviewed&page=1")[0] == len(
        [n for n in range(2, total + 1) if n % 10 != 0 and n > 6])  # post 1 has no #sun
    for bad in ("?status=bogus", "?since=yesterday", "?page=0", "?tag=a-b", "?page=9223372036854775807",
                "?page=99999999999999999999", "?page=%D9%A3", "?page=abc", "?until=9999-12-31"):
        assert client.get("/admin/" + bad).status_code == 400, bad
    assert rows("?page=2147483647")[1] == []  # the last page number there can be: an empty page, not an error


def test_numbers_no_id_can_be_are_404_in_every_url(client, post_id):
    for path in ("/admin/posts/99999999999999999999", "/admin/posts/3000000000", "/admin/posts/%D9%A3",
                 f"/admin/posts/{post_id}/heatmaps/99999999999999999999.png", "/posts/99999999999999999999",
                 "/posts/3000000000/image"):
        assert client.get(path).status_code == 404, path
    assert client.post("/admin/posts/3000000000/review", data={}).status_code == 404


def test_only_ticked_hashtags_train_unless_the_reviewer_types_more(client, post_id, sessions):
    """A reviewer who ticks only #coffee and types nothing approves a post that trains with #coffee alone."""
    html = client.get(f"/admin/posts/{post_id}").get_data(as_text=True)
    assert 'id="tags" maxlength="2000" name="tags" size="50" spellcheck="false" type="text" value=""' in html
    assert _submit(client, post_id, relevant=["1"], tags="", approve="Approve").status_code == 302
    with sessions() as session:
        review = session.scalars(select(Review)).one()
        assert review.corrected_tags() == ["coffee"]
        assert {(c.text, c.change) for c in review.tag_changes} == {("cup", TagChange.REMOVED),
                                                                   ("food", TagChange.REMOVED)}
    page = client.get(f"/admin/posts/{post_id}").get_data(as_text=True)
    assert 'spellcheck="false" type="text" value=""' in page  # reopened: still nothing besides the ticked one
    assert _submit(client, post_id, relevant=["2"], tags="saucer").status_code == 302
    with sessions() as session:
        latest = session.scalars(select(Review).order_by(Review.revision.desc())).first()
        assert latest.corrected_tags() == ["cup", "saucer"]
    assert 'value="saucer"' in client.get(f"/admin/posts/{post_id}").get_data(as_text=True)
