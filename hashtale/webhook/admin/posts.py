"""A post page (photo, hashtags with scores and heat maps, story, review history) and the review form."""
from __future__ import annotations

from flask import abort, flash, g, redirect, render_template, url_for
from sqlalchemy.exc import IntegrityError
from wtforms.fields.choices import SelectChoice

from hashtale.db.reviews import Closeness, Review, ReviewState
from hashtale.db.schema import Post
from hashtale.review.history import (
    NotYourReview, ReviewAnswers, ReviewConflict, current_review, current_state, parse_tags, reviews_of_post,
    submit_review,
)
from hashtale.review.queue import next_unreviewed, post_for_review
from hashtale.webhook.admin import bp
from hashtale.webhook.admin.forms import ReviewForm
from hashtale.webhook.admin.heatmap import render_overlay
from hashtale.webhook.database import db
from hashtale.webhook.integers import parse_int
from hashtale.webhook.posts import post_url

PRIVATE_CACHE = "private, max-age=3600"  # seconds; a hashtag's attention never changes


def _load_post(post_id: int) -> Post:
    post = post_for_review(db.session, post_id)
    if post is None:
        abort(404, description=f"no post {post_id}")
    return post


def _form_for(post: Post, mine: Review | None) -> ReviewForm:
    """The form prefilled with the reviewer's current review, or with the model's suggestions."""
    form = ReviewForm()
    form.relevant.choices = [SelectChoice(h.rank, h.text) for h in post.hashtags]
    if mine is None:
        return form  # nothing ticked, no other hashtag: the reviewer builds the training tags
    form.relevant.data = [v.rank for v in mine.verdicts if v.relevant]
    ticked = {v.text for v in mine.verdicts if v.relevant}
    form.tags.data = " ".join(t for t in mine.corrected_tags() if t not in ticked)
    form.hashtag_relevant.data = "yes" if mine.hashtag_relevant else "no"
    if mine.story_meaningful is not None:
        form.story_meaningful.data = "yes" if mine.story_meaningful else "no"
    if mine.story_closeness is not None:
        form.story_closeness.data = mine.story_closeness.value
    form.note.data = mine.note or ""
    form.base_review_id.data = str(mine.id)
    return form


def _render(post: Post, form: ReviewForm, status: int = 200):
    history = reviews_of_post(db.session, post.id)
    return render_template(
        "admin/post.html", post=post, form=form, history=history,
        state=current_state(db.session, post.id), next_id=next_unreviewed(db.session, post),
        photo_url=post_url("posts.get_image", post.id),
    ), status


@bp.get("/posts/<int:post_id>")
def post_page(post_id: int):
    post = _load_post(post_id)
    return _render(post, _form_for(post, current_review(db.session, post.id, g.admin.id)))


def _answers(post: Post, form: ReviewForm) -> ReviewAnswers:
    """Validated form -> answers; raises ValueError with a message for the reviewer."""
    if post.story is not None and not (form.story_meaningful.data and form.story_closeness.data):
        raise ValueError("answer both questions about the story")
    decision = ReviewState.APPROVED if form.approve.data else ReviewState.REJECTED if form.reject.data else None
    return ReviewAnswers(
        hashtag_relevant=form.hashtag_relevant.data == "yes",
        story_meaningful=form.story_meaningful.data == "yes" if form.story_meaningful.data else None,
        story_closeness=Closeness(form.story_closeness.data) if form.story_closeness.data else None,
        relevant_ranks=frozenset(form.relevant.data or ()),
        tags=training_tags(post, form),
        note=(form.note.data or "").strip() or None,
        decision=decision,
    )


def training_tags(post: Post, form: ReviewForm) -> tuple[str, ...]:
    """The hashtags the post trains with: the ticked suggestions (by rank), then the reviewer's other hashtags.
    An unticked suggestion is never one of them unless the reviewer types it."""
    ticked = set(form.relevant.data or ())
    suggested = tuple(h.text for h in post.hashtags if h.rank in ticked)
    return tuple(dict.fromkeys(suggested + parse_tags(form.tags.data or "")))


@bp.post("/posts/<int:post_id>/review")
def submit(post_id: int):
    post = _load_post(post_id)
    form = ReviewForm()
    form.relevant.choices = [SelectChoice(h.rank, h.text) for h in post.hashtags]
    try:
        base = parse_int(form.base_review_id.data) if form.base_review_id.data else None
    except ValueError as exc:
        abort(400, description=f"bad base_review_id: {exc}")
    try:
        if not form.validate():
            errors = (f"{form[name].label.text} {' '.join(messages)}" for name, messages in form.errors.items())
            raise ValueError("; ".join(errors))
        answers = _answers(post, form)
    except ValueError as exc:  # a form error, a missing answer or an InvalidTag
        flash(str(exc), "error")
        return _render(post, form, 400)
    try:
        review = submit_review(db.session, post, g.admin, answers, base)
        db.session.commit()
    except NotYourReview as exc:
        db.session.rollback()
        abort(403, description=str(exc))
    except (ReviewConflict, IntegrityError) as exc:
        db.session.rollback()
        abort(409, description=str(exc) if isinstance(exc, ReviewConflict) else "a concurrent save won; reload")
    flash(f"Saved review revision {review.revision} of post {post.id}.", "ok")
    return redirect(url_for("admin.post_page", post_id=post.id))


@bp.get("/posts/<int:post_id>/heatmaps/<int:rank>.png")
def heatmap(post_id: int, rank: int):
    """The hashtag's attention as a transparent PNG with the photo's aspect ratio, laid over the photo."""
    post = _load_post(post_id)
    hashtag = next((h for h in post.hashtags if h.rank == rank), None)
    if hashtag is None or not hashtag.attention:
        abort(404, description=f"post {post_id} has no attention map for rank {rank}")
    png = render_overlay((post.width, post.height), hashtag.attention, tuple(hashtag.attention_shape))
    return png, 200, {"Content-Type": "image/png", "Cache-Control": PRIVATE_CACHE}
