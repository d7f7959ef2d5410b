"""Story corpora for the storyteller, and the character streams it is trained on.

Three loaders, one `Story` type:
- `load_personabank(folder)`: the PersonaBank `.txt` stories; the `#` that marks anonymised names is removed, and
  the topics of `personaBank.csv` (next to the folder) become tags.
- `load_aesop(json_path)`: Aesop for children (title, fable); the title's key nouns become tags.
- `load_text_folder(folder)`: any folder of `.txt` files, one story each; the file name's words become tags.

Tags are pseudo-hashtags: each training document is `#tag\\n<story>\\n\\n` with a tag the story is about (a topic,
a title noun, or a word of the hashtag vocabulary that occurs in the story), drawn anew each epoch, so the model
learns to write about whatever hashtag primes it (the original storyteller, primed with unrelated text, did not).
"""
from __future__ import annotations

import csv
import json
import random
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch

from models.chars import CharVocab, clean_story, clean_tag, format_document, prompt_for
from models.storyteller import IGNORE_INDEX

# Words that never make a hashtag.
STOPWORDS = frozenset(
    "a an and the of in on at to for with from by is was my our your his her their its it i me we you he she they "
    "this that these those out up down over under how why what who when not no new old one two little great "
    "interp mine now like just also very really too more most some any all so but or if then than there here been be "
    "are were has have had do did does can could would should will get got make made into about after before again "
    "as off once only own same other such both each few myself yourself him them us am".split()
)
_WORD = re.compile(r"[a-z]+")
CORPUS_KINDS = ("personabank", "aesop", "text")
DEFAULT_TAG_VOCABULARY = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "harrison" / "vocab_index.txt"
MIN_TAG_CHARS = 2  # "ox" is a fine hashtag
RELATED_TAG_CHANCE = 0.5  # in training, how often a story is primed with a related word instead of its own tag


@dataclass
class Story:
    title: str
    text: str  # clean: one line, no '#'
    tags: list[str] = field(default_factory=list)  # what the story is about, best first; tags[0] for validation
    related: list[str] = field(default_factory=list)  # hashtag-vocabulary words that occur in the story


def _title_tags(title: str, text: str) -> list[str]:
    """Content words of the title that occur in the story, singular when the story uses the singular."""
    words = set(_WORD.findall(text.lower()))
    tags = []
    for word in _WORD.findall(title.lower()):
        if word in STOPWORDS or len(word) < MIN_TAG_CHARS:
            continue
        if word.endswith("s") and word[:-1] in words:
            word = word[:-1]
        if word in words and word not in tags:
            tags.append(word)
    return tags


def _add_vocabulary_tags(story: Story, vocabulary: frozenset[str]) -> Story:
    present = set(_WORD.findall(story.text.lower())) & vocabulary
    story.related = sorted(t for t in present - STOPWORDS if len(t) >= MIN_TAG_CHARS and t not in story.tags)
    if not story.tags:
        story.tags = story.related[:1] or ["story"]
    return story


def load_personabank(folder: str | Path) -> list[Story]:
    folder = Path(folder)
    topics: dict[str, list[str]] = {}
    csv_path = folder.parent / "personaBank.csv"
    if csv_path.exists():
        with csv_path.open(newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f):
                topics[row["FileName"]] = [clean_tag(t) for t in row["Topic(s)"].split(",") if t.strip()]
    stories = []
    for path in sorted(folder.glob("*.txt")):
        text = clean_story(path.read_text(encoding="utf-8", errors="replace"))  # drops the '#' name markers
        title = " ".join(path.stem.split("_")[1:])  # a005_new_kitten -> "new kitten"
        tags = topics.get(path.stem, []) + _title_tags(title, text)
        stories.append(Story(title, text, list(dict.fromkeys(tags))))
    return stories


def load_aesop(json_path: str | Path) -> list[Story]:
    fables = json.loads(Path(json_path).read_text(encoding="utf-8"))
    stories = []
    for fable in fables:
        text = clean_story(fable["fable"])
        stories.append(Story(fable["title"], text, _title_tags(fable["title"], text)))
    return stories


def load_text_folder(folder: str | Path) -> list[Story]:
    stories = []
    for path in sorted(Path(folder).glob("*.txt")):
        text = clean_story(path.read_text(encoding="utf-8", errors="replace"))
        title = re.sub(r"[_\-]+", " ", path.stem)
        stories.append(Story(title, text, _title_tags(title, text)))
    return stories


def load_corpus(spec: str, tag_vocabulary: frozenset[str] = frozenset()) -> list[Story]:
    """`KIND:PATH` with KIND one of personabank, aesop, text; empty stories are dropped."""
    kind, sep, path = spec.partition(":")
    if not sep or kind not in CORPUS_KINDS:
        raise ValueError(f"corpus {spec!r}: expected KIND:PATH with KIND in {', '.join(CORPUS_KINDS)}")
    loader = {"personabank": load_personabank, "aesop": load_aesop, "text": load_text_folder}[kind]
    return [_add_vocabulary_tags(s, tag_vocabulary) for s in loader(path) if s.text]


def load_tag_vocabulary(path: str | Path | None) -> frozenset[str]:
    """The hashtags the tagger can suggest: first word of each line (HARRISON's vocab_index.txt format)."""
    if not path:
        return frozenset()
    return frozenset(clean_tag(line.split()[0]) for line in Path(path).read_text().splitlines() if line.strip())


def split_stories(stories: list[Story], val_fraction: float, seed: int) -> tuple[list[Story], list[Story]]:
    """Hold out whole stories, chosen by a fixed seed (at least one when val_fraction > 0)."""
    order = list(range(len(stories)))
    random.Random(seed).shuffle(order)
    n_val = max(1, round(len(stories) * val_fraction)) if val_fraction > 0 else 0
    held = set(order[:n_val])
    return [s for i, s in enumerate(stories) if i not in held], [s for i, s in enumerate(stories) if i in held]


def encode_stories(stories: list[Story], vocab: CharVocab, rng: random.Random | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """One character stream -> (inputs (N,), targets (N,)); targets inside the priming line are IGNORE_INDEX,
    so the loss counts story characters (and the blank line that ends each story) only.

    With `rng` (training): stories shuffled, each primed with one of its tags or, half of the time, a related word;
    without: given order, first tag.
    """
    order = list(stories)
    if rng is not None:
        rng.shuffle(order)
    ids: list[int] = []
    scored: list[bool] = []
    for story in order:
        tag = story.tags[0]
        if rng is not None:
            use_related = story.related and rng.random() < RELATED_TAG_CHANCE
            tag = rng.choice(story.related if use_related else story.tags)
        doc = vocab.encode(format_document(tag, story.text))
        n_prompt = len(prompt_for(tag))
        ids += doc
        scored += [False] * n_prompt + [True] * (len(doc) - n_prompt)
    stream = torch.tensor(ids, dtype=torch.long)
    targets = stream[1:].masked_fill(~torch.tensor(scored[1:]), IGNORE_INDEX)
    return stream[:-1], targets


def corpus_text(stories: list[Story]) -> str:
    return "".join(s.text for s in stories)
