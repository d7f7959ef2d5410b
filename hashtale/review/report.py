"""`hashtale report`: the original study's figures, computed from the review tables.

The study asked a panel three questions per image and reported 65% relevant hashtags and 47% stories with
some context. Here each reviewer's current (latest) review of a post counts once:
- relevant hashtags: share of reviewed posts whose hashtag a strict majority of their reviewers judged relevant;
- hashtags per post and ticked: a post gets as many hashtags as its model emitted; "ticked" is the share of
  suggested hashtags that reviewers ticked as relevant (over reviews: the precision of the emitted sets);
- meaningful context: share of reviewed posts with a story that a strict majority judged to have a meaningful context;
- closeness: distribution of the story-to-image closeness answers (none / slight / strong) over reviews.
Each figure is given for all reviews and per model ("name:version" of the model whose output was judged).
"""
from __future__ import annotations

import sys
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import Session, selectinload

from hashtale.db.reviews import Closeness, Review
from hashtale.db.arguments import add_database_url, database_url
from hashtale.db.session import session_factory_for
from hashtale.review.history import latest_reviews
from hashtale.settings import DEFAULT_DATA_DIR

ALL_MODELS = "all"
ORIGINAL_RELEVANT = 0.65  # the original study's share of relevant hashtags
ORIGINAL_CONTEXT = 0.47  # and of stories with some context
CHART_SIZE = (11, 4.5)  # inches
CHART_DPI = 100


@dataclass(frozen=True)
class Judgement:
    """One reviewer's current answers about one post."""

    post_id: int
    hashtag_model: str | None
    story_model: str | None
    hashtag_relevant: bool
    story_meaningful: bool | None
    story_closeness: Closeness | None
    suggested: int  # hashtags the model emitted for the post (verdicts of this review)
    ticked: int  # of which this reviewer ticked as relevant


@dataclass(frozen=True)
class HashtagFigures:
    model: str
    posts: int
    reviews: int
    relevant_posts: int  # posts whose hashtag a majority judged relevant
    suggested: int  # hashtags judged, over reviews
    ticked: int  # of which ticked relevant

    @property
    def relevant(self) -> float | None:
        return self.relevant_posts / self.posts if self.posts else None

    @property
    def per_post(self) -> float | None:
        return self.suggested / self.reviews if self.reviews else None

    @property
    def ticked_share(self) -> float | None:
        return self.ticked / self.suggested if self.suggested else None


@dataclass(frozen=True)
class StoryFigures:
    model: str
    posts: int
    reviews: int
    meaningful_posts: int  # posts whose story a majority judged meaningful
    closeness: dict[Closeness, int]  # reviews per answer

    @property
    def meaningful(self) -> float | None:
        return self.meaningful_posts / self.posts if self.posts else None

    def closeness_share(self, answer: Closeness) -> float | None:
        total = sum(self.closeness.values())
        return self.closeness[answer] / total if total else None


@dataclass(frozen=True)
class Report:
    reviewers: int
    posts: int
    hashtags: list[HashtagFigures]  # "all" first, then per model
    stories: list[StoryFigures]


def collect(session: Session) -> tuple[list[Judgement], int]:
    """Every reviewer's current review, and how many reviewers there are."""
    reviews = session.scalars(latest_reviews().options(selectinload(Review.verdicts))).all()
    judgements = [
        Judgement(r.post_id, r.hashtag_model, r.story_model, r.hashtag_relevant, r.story_meaningful, r.story_closeness,
                  suggested=len(r.verdicts), ticked=sum(v.relevant for v in r.verdicts))
        for r in reviews
    ]
    return judgements, len({r.reviewer_id for r in reviews})


def majority(votes: list[bool]) -> bool:
    return 2 * sum(votes) > len(votes)


def _hashtag_figures(model: str, judgements: list[Judgement]) -> HashtagFigures:
    votes: dict[int, list[bool]] = defaultdict(list)
    for j in judgements:
        votes[j.post_id].append(j.hashtag_relevant)
    return HashtagFigures(model, len(votes), len(judgements), sum(majority(v) for v in votes.values()),
                          suggested=sum(j.suggested for j in judgements), ticked=sum(j.ticked for j in judgements))


def _story_figures(model: str, judgements: list[Judgement]) -> StoryFigures:
    votes: dict[int, list[bool]] = defaultdict(list)
    for j in judgements:
        votes[j.post_id].append(j.story_meaningful)
    closeness = Counter({c: 0 for c in Closeness})
    closeness.update(j.story_closeness for j in judgements if j.story_closeness is not None)
    return StoryFigures(model, len(votes), len(judgements), sum(majority(v) for v in votes.values()), dict(closeness))


def summarize(judgements: list[Judgement], reviewers: int) -> Report:
    tagged = [j for j in judgements if j.hashtag_model is not None]
    told = [j for j in judgements if j.story_model is not None and j.story_meaningful is not None]
    by_tagger: dict[str, list[Judgement]] = defaultdict(list)
    for j in tagged:
        by_tagger[j.hashtag_model].append(j)
    by_writer: dict[str, list[Judgement]] = defaultdict(list)
    for j in told:
        by_writer[j.story_model].append(j)
    return Report(
        reviewers=reviewers,
        posts=len({j.post_id for j in judgements}),
        hashtags=[_hashtag_figures(ALL_MODELS, tagged)] + [_hashtag_figures(m, j) for m, j in sorted(by_tagger.items())],
        stories=[_story_figures(ALL_MODELS, told)] + [_story_figures(m, j) for m, j in sorted(by_writer.items())],
    )


def percent(share: float | None) -> str:
    return "–" if share is None else f"{100 * share:.1f}%"


def to_markdown(report: Report) -> str:
    lines = [
        "# Review report",
        "",
        f"{report.posts} reviewed posts, {report.reviewers} reviewers; each reviewer's latest review of a post "
        "counts once, a post counts when a strict majority of its reviewers says yes.",
        f"Original study: {percent(ORIGINAL_RELEVANT)} relevant hashtags, "
        f"{percent(ORIGINAL_CONTEXT)} stories with some context.",
        "",
        "## Is the hashtag relevant to the image?",
        "",
        "| hashtag model | posts | reviews | relevant | hashtags per post | ticked |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    lines += [f"| {h.model} | {h.posts} | {h.reviews} | {percent(h.relevant)} | "
              f"{'–' if h.per_post is None else f'{h.per_post:.2f}'} | {percent(h.ticked_share)} |"
              for h in report.hashtags]
    lines += [
        "",
        "## Does the story have a meaningful context? How close is it to the image?",
        "",
        "| story model | posts | reviews | meaningful context | closeness none | slight | strong |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {s.model} | {s.posts} | {s.reviews} | {percent(s.meaningful)} | "
        + " | ".join(percent(s.closeness_share(c)) for c in Closeness) + " |"
        for s in report.stories
    ]
    return "\n".join(lines) + "\n"


def write_chart(report: Report, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display: a file only
    import matplotlib.pyplot as plt

    def pct(share: float | None) -> float:
        return 0.0 if share is None else 100 * share

    fig, (left, right) = plt.subplots(1, 2, figsize=CHART_SIZE)
    names = [h.model for h in report.hashtags]
    left.bar(names, [pct(h.relevant) for h in report.hashtags], color="#1565c0")
    left.axhline(100 * ORIGINAL_RELEVANT, color="#c62828", linestyle="--", label="original study")
    left.set(title="Relevant hashtag (majority of reviewers)", ylabel="% of reviewed posts", ylim=(0, 100))
    left.legend(loc="upper right")

    names = [s.model for s in report.stories]
    series = [("meaningful context", [pct(s.meaningful) for s in report.stories], "#2e7d32")] + [
        (f"closeness {c.value}", [pct(s.closeness_share(c)) for s in report.stories], colour)
        for c, colour in zip(Closeness, ("#bdbdbd", "#ffb300", "#ef6c00"))
    ]
    width = 0.8 / len(series)
    for i, (label, values, colour) in enumerate(series):
        right.bar([x + i * width for x in range(len(names))], values, width, label=label, color=colour)
    right.axhline(100 * ORIGINAL_CONTEXT, color="#c62828", linestyle="--", label="original study (context)")
    right.set_xticks([x + width * (len(series) - 1) / 2 for x in range(len(names))], names)
    right.set(title="Stories", ylabel="% of reviewed posts / reviews", ylim=(0, 100))
    right.legend(loc="upper right", fontsize="small")
    for ax in (left, right):
        ax.tick_params(axis="x", labelrotation=15)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=CHART_DPI)
    plt.close(fig)


def add_arguments(parser) -> None:
    add_database_url(parser)
    parser.add_argument("--out", type=Path, default=DEFAULT_DATA_DIR / "report",
                        help="folder for report.md and report.png (default: var/report)")


def run(args) -> int:
    with session_factory_for(database_url(args)) as sessions, sessions() as session:
        report = summarize(*collect(session))
    markdown = to_markdown(report)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "report.md").write_text(markdown)
    write_chart(report, args.out / "report.png")
    sys.stdout.write(markdown)
    print(f"\nwrote {args.out / 'report.md'} and {args.out / 'report.png'}")
    return 0
