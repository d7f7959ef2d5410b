"""`hashtale report` gives the figures a hand count of the seeded reviews gives, and draws the chart."""
from __future__ import annotations

import random
from collections import defaultdict

from PIL import Image

from hashtale import cli
from hashtale.db.reviews import Closeness, HashtagVerdict, Review
from tests.support.admin import add_admin, add_post

POSTS = 40
REVIEWERS = 3
TAG_SETS = [["cup"], ["cup", "coffee"], ["cup", "coffee", "saucer"]]  # the model decides how many a post gets
TAGGERS = [("sat-effnetlite0", "v1"), ("sat-effnetlite0", "v2")]
WRITERS = [("char-lstm", "a"), ("char-lstm", "b")]


def _seed(sessions, media_dir, image) -> dict[tuple[int, int], dict]:
    """Random reviews (some revised: only the last revision may count); returns the current answers."""
    rng = random.Random(7)
    current: dict[tuple[int, int], dict] = {}
    with sessions.begin() as session:
        reviewers = [add_admin(session, f"r{i}") for i in range(REVIEWERS)]
        for n in range(POSTS):
            has_story = n % 7 != 0
            post = add_post(session, media_dir, image, n, TAG_SETS[n % len(TAG_SETS)], tagger=TAGGERS[n % 2],
                            writer=WRITERS[n % 3 == 0], story="A story." if has_story else None)
            for reviewer in reviewers:
                if rng.random() < 0.25:
                    continue  # not every reviewer reviews every post
                for revision in range(1, rng.choice([1, 1, 2, 3]) + 1):
                    answers = {
                        "hashtag_relevant": rng.random() < 0.6,
                        "story_meaningful": rng.random() < 0.5 if has_story else None,
                        "story_closeness": rng.choice(list(Closeness)) if has_story else None,
                        "tagger": "%s:%s" % TAGGERS[n % 2],
                        "writer": "%s:%s" % WRITERS[n % 3 == 0] if has_story else None,
                        "ticks": [rng.random() < 0.5 for _ in post.hashtags],
                    }
                    session.add(Review(post_id=post.id, reviewer_id=reviewer, revision=revision,
                                       hashtag_relevant=answers["hashtag_relevant"],
                                       story_meaningful=answers["story_meaningful"],
                                       story_closeness=answers["story_closeness"],
                                       hashtag_model=answers["tagger"], story_model=answers["writer"],
                                       verdicts=[HashtagVerdict(hashtag_id=h.id, rank=h.rank, text=h.text, relevant=tick)
                                                 for h, tick in zip(post.hashtags, answers["ticks"])]))
                    current[(post.id, reviewer)] = answers
    return current


def _pct(numerator: int, denominator: int) -> str:
    return f"{100 * numerator / denominator:.1f}%"


def _hand_count(current: dict[tuple[int, int], dict]) -> tuple[dict, dict]:
    """Expected Markdown cells per table row, counted the plain way."""
    hashtag_rows, story_rows = {}, {}
    for model in ["all"] + sorted({"%s:%s" % t for t in TAGGERS}):
        votes, ticks = defaultdict(list), []
        for (post, _), a in current.items():
            if model in ("all", a["tagger"]):
                votes[post].append(a["hashtag_relevant"])
                ticks.append(a["ticks"])
        yes = sum(1 for v in votes.values() if v.count(True) > v.count(False))
        suggested = sum(map(len, ticks))
        hashtag_rows[model] = [str(len(votes)), str(len(ticks)), _pct(yes, len(votes)),
                               f"{suggested / len(ticks):.2f}", _pct(sum(map(sum, ticks)), suggested)]
    for model in ["all"] + sorted({"%s:%s" % w for w in WRITERS}):
        votes, closeness = defaultdict(list), []
        for (post, _), a in current.items():
            if a["writer"] is not None and model in ("all", a["writer"]):
                votes[post].append(a["story_meaningful"])
                closeness.append(a["story_closeness"])
        yes = sum(1 for v in votes.values() if v.count(True) > v.count(False))
        story_rows[model] = [str(len(votes)), str(len(closeness)), _pct(yes, len(votes))] + [
            _pct(closeness.count(c), len(closeness)) for c in Closeness]
    return hashtag_rows, story_rows


def _table_rows(markdown: str, header: str) -> dict[str, list[str]]:
    section = header + markdown.split(header, 1)[1].split("\n\n", 1)[0]
    cells = [line.strip("|").split("|") for line in section.splitlines()[2:] if line.startswith("|")]
    return {row[0].strip(): [c.strip() for c in row[1:]] for row in cells}


def test_report_matches_a_hand_count(database_url, sessions, tmp_path, coffee_jpeg, capsys):
    current = _seed(sessions, tmp_path / "media", coffee_jpeg)
    out = tmp_path / "report"
    assert cli.main(["report", "--database-url", database_url, "--out", str(out)]) == 0
    printed = capsys.readouterr().out

    hashtag_rows, story_rows = _hand_count(current)
    assert _table_rows(printed, "| hashtag model |") == hashtag_rows
    assert _table_rows(printed, "| story model |") == story_rows
    assert len(hashtag_rows) == len(story_rows) == 3  # "all" and two models each
    assert f"{len({post for post, _ in current})} reviewed posts, {REVIEWERS} reviewers" in printed
    assert (out / "report.md").read_text() in printed
    with Image.open(out / "report.png") as chart:
        assert chart.format == "PNG" and chart.width > 500 and chart.height > 200
