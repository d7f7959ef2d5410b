"""Where a sentence starts and ends: the one definition shared by the sampler (where a story may start and stop),
the story metrics (does a story end at a sentence end) and the corpus cutter (where a long paragraph is cut).

A sentence ends at `.`, `!` or `?` (a run like `?!` is one end), followed by any closing quotes or brackets, straight
or curly (the corpus writes dialogue as `“...,” said the Fox.` and `...the end.”`), then whitespace or the end of the
text. An ellipsis (`...`) trails off: it does not end a sentence.
"""
from __future__ import annotations

import re
import string

END_MARKS = ".!?"
CLOSERS = "\"'”’)]"  # may follow the end mark: `He ran.”` ends after the quote
SENTENCE_START_CHARS = string.ascii_uppercase + "“‘\"'"  # a capital or an opening quote

SENTENCE_END = re.compile(r"(?<!\.)(?:[!?]+|\.(?!\.))[" + re.escape(CLOSERS) + r"]*(?=\s|$)")


def sentence_ends(text: str) -> list[int]:
    """Offsets just past each sentence end that whitespace follows. In text still being written an end mark at
    the very end is not settled yet (a closing quote may come), so it is not listed."""
    return [m.end() for m in SENTENCE_END.finditer(text) if m.end() < len(text)]


def ends_at_sentence_end(text: str) -> bool:
    """A finished text ends with a sentence end (`He ran.”`), not mid-sentence nor with a trailing `...`."""
    text = text.strip()
    return bool(text) and len(text) in sentence_ends(text + " ")
