"""Story corpora for the storyteller: ~500-character passages, each tagged with the hashtags it is about.

Loaders, one `Story` type:
- `load_story_jsonl(folder)`: the `stories/` corpus (one JSON record a line: title, text with paragraphs separated
  by newlines, source); the Aesop translations are grouped by normalised title, so a split never puts one fable's
  translations on both sides.
- `load_personabank(folder)`, `load_aesop(json_path)`, `load_text_folder(folder)`: the older corpora.
Long stories are cut into passages at paragraph ends (or sentence ends inside a long paragraph), so every passage
starts at a sentence start and ends at a sentence end. A passage's hashtags are the vocabulary hashtags its words name
(`hashtale.training.lexicon.TagLexicon`), most often named first.
"""
from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch

from hashtale.models.chars import CharVocab, clean_story, format_document, prompt_for
from hashtale.models.sentences import sentence_ends
from hashtale.models.storyteller import IGNORE_INDEX, NO_TAG
from hashtale.training.lexicon import TagLexicon

CORPUS_KINDS = ("stories", "personabank", "aesop", "text")
PASSAGE_CHARS = 500  # a passage closes at the first paragraph/sentence end at or past this length...
MAX_PASSAGE_CHARS = 800  # ...and a paragraph longer than this is cut at sentence ends
MIN_PASSAGE_CHARS = 150  # a shorter tail joins the passage before it
MAX_TAGS = 5  # hashtags per training passage, as many as the hashtagger suggests
TOP_TAGS = 8  # training tag sets are drawn from a passage's most often named hashtags
NOT_STORIES = ("short history",)  # essay records in the corpus (lower-case title fragments)
_TITLE_WORD = re.compile(r"[a-z]+")
_TITLE_STOPWORDS = frozenset("the a an and of his her their its to in".split())


@dataclass
class Story:
    title: str
    text: str  # one line, no '#'
    group: str = ""  # stories of one group stay on one side of a split (translations of one fable)
    tags: list[str] = field(default_factory=list)  # hashtags the text names, most often named first


def fable_key(title: str) -> str:
    """A title normalised so the translations of one fable agree: 'The Lion’s Share' ~ 'THE LION'S SHARE'."""
    words = _TITLE_WORD.findall(title.lower().replace("’", "'").replace("'s", ""))
    return " ".join(sorted(w.rstrip("s") for w in words if w not in _TITLE_STOPWORDS))


def load_story_jsonl(folder: str | Path) -> list[Story]:
    stories = []
    for path in sorted(Path(folder).glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            title = record["title"]
            if any(s in title.lower() for s in NOT_STORIES):
                continue
            group = f"aesop:{fable_key(title)}" if path.stem.startswith("aesop") else f"{path.stem}:{title}"
            stories.append(Story(title, record["text"], group))
    return stories


def load_personabank(folder: str | Path) -> list[Story]:
    return [Story(" ".join(p.stem.split("_")[1:]), p.read_text(encoding="utf-8", errors="replace").replace("#", ""),
                  f"personabank:{p.stem}") for p in sorted(Path(folder).glob("*.txt"))]


def load_aesop(json_path: str | Path) -> list[Story]:
    return [Story(f["title"], f["fable"], f"aesop:{fable_key(f['title'])}")
            for f in json.loads(Path(json_path).read_text(encoding="utf-8"))]


def load_text_folder(folder: str | Path) -> list[Story]:
    return [Story(p.stem, p.read_text(encoding="utf-8", errors="replace"), f"text:{p.stem}")
            for p in sorted(Path(folder).glob("*.txt"))]


def _pieces(paragraph: str) -> list[str]:
    """A paragraph, or its sentences when it is too long to be one passage."""
    if len(paragraph) <= MAX_PASSAGE_CHARS:
        return [paragraph]
    cuts = [0] + sentence_ends(paragraph) + [len(paragraph)]
    return [s for a, b in zip(cuts, cuts[1:]) if (s := paragraph[a:b].strip())]


def cut_passages(story: Story) -> list[Story]:
    """~PASSAGE_CHARS passages of whole paragraphs (or sentences), each one line."""
    passages, current = [], []
    for paragraph in re.split(r"\n\s*\n|\n", story.text):
        for piece in _pieces(clean_story(paragraph)):
            current.append(piece)
            if len(" ".join(current)) >= PASSAGE_CHARS:
                passages.append(" ".join(current))
                current = []
    tail = " ".join(current)
    if tail and passages and len(tail) < MIN_PASSAGE_CHARS:
        passages[-1] += " " + tail
    elif tail:
        passages.append(tail)
    return [Story(story.title, p, story.group) for p in passages if p]


def load_corpus(spec: str, lexicon: TagLexicon) -> list[Story]:
    """`KIND:PATH` -> tagged passages; KIND one of stories, personabank, aesop, text."""
    kind, sep, path = spec.partition(":")
    if not sep or kind not in CORPUS_KINDS:
        raise ValueError(f"corpus {spec!r}: expected KIND:PATH with KIND in {', '.join(CORPUS_KINDS)}")
    loader = {"stories": load_story_jsonl, "personabank": load_personabank, "aesop": load_aesop,
              "text": load_text_folder}[kind]
    passages = [p for story in loader(path) for p in cut_passages(story)]
    for p in passages:
        p.tags = lexicon.tags_of(p.text)
    return passages


def split_stories(stories: list[Story], val_fraction: float, seed: int) -> tuple[list[Story], list[Story]]:
    """Hold out whole groups (a story and all its passages, or every translation of a fable), by a fixed seed."""
    groups = sorted({s.group for s in stories})
    random.Random(seed).shuffle(groups)
    n_val = max(1, round(len(groups) * val_fraction)) if val_fraction > 0 else 0
    held = set(groups[:n_val])
    return [s for s in stories if s.group not in held], [s for s in stories if s.group in held]


def corpus_text(stories: list[Story]) -> str:
    return "".join(s.text for s in stories)


def training_tags(story: Story, rng: random.Random) -> list[str]:
    """A random tag set for one training pass: 1..MAX_TAGS of the passage's TOP_TAGS hashtags, in random order."""
    pool = story.tags[:TOP_TAGS]
    if not pool:
        return []
    return rng.sample(pool, rng.randint(1, min(MAX_TAGS, len(pool))))


def encode_batch(stories: list[Story], tag_sets: list[list[str]], vocab: CharVocab, tag_index: dict[str, int]
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Documents `#tags\\n<passage>\\n\\n` -> (inputs (B, L), targets (B, L), tags (B, K)), right-padded.
    Targets inside the priming line and in the padding are IGNORE_INDEX; unknown tags are dropped from `tags`."""
    docs = [vocab.encode(format_document(tags, s.text)) for s, tags in zip(stories, tag_sets)]
    length = max(len(d) for d in docs) - 1
    inputs = torch.zeros(len(docs), length, dtype=torch.long)  # (B, L)
    targets = torch.full((len(docs), length), IGNORE_INDEX, dtype=torch.long)  # (B, L)
    ids = [[tag_index[t] for t in tags if t in tag_index] for tags in tag_sets]
    tags = torch.full((len(docs), max(1, max(map(len, ids)))), NO_TAG, dtype=torch.long)  # (B, K)
    for row, (doc, tag_sets_row, tag_ids) in enumerate(zip(docs, tag_sets, ids)):
        n_prompt = len(prompt_for(tag_sets_row))
        inputs[row, : len(doc) - 1] = torch.tensor(doc[:-1])
        targets[row, n_prompt - 1: len(doc) - 1] = torch.tensor(doc[n_prompt:])
        tags[row, : len(tag_ids)] = torch.tensor(tag_ids, dtype=torch.long)
    return inputs, targets, tags


def batches(stories: list[Story], batch_size: int, rng: random.Random | None = None) -> list[list[int]]:
    """Indices of `stories` in batches of similar length (little padding); shuffled with `rng`, else in order."""
    order = list(range(len(stories)))
    if rng is not None:
        rng.shuffle(order)
    pool = batch_size * 50  # sort by length within pools of 50 batches, so batches stay random across the corpus
    out = []
    for start in range(0, len(order), pool):
        chunk = sorted(order[start:start + pool], key=lambda i: len(stories[i].text))
        out += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    if rng is not None:
        rng.shuffle(out)
    return out
