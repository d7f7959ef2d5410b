"""`hashtale tag PHOTO`: hashtags and a story for one image, in this process (no server, no database)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from hashtale.inference import InvalidImage
from hashtale.inference.local import LocalBackend
from hashtale.settings import Settings
from hashtale.worker import pipeline

CLI_POST_ID = 0  # the story seed of a photo that is not a post; --seed overrides it


def add_arguments(parser) -> None:
    parser.add_argument("photo", type=Path, help="a JPEG, PNG or WebP file")
    parser.add_argument("-k", type=int, default=None, help="at most this many hashtags (default: $HASHTAGS_PER_POST)")
    parser.add_argument("--length", type=int, default=None, help="story length in characters")
    parser.add_argument("--temperature", type=float, default=None)
    parser.add_argument("--top-k", type=int, default=None)
    parser.add_argument("--seed", type=int, default=None, help="story sampling seed")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")


def run(args) -> int:
    settings = Settings.from_env()
    overrides = {"story_length": args.length, "story_temperature": args.temperature, "story_top_k": args.top_k}
    settings = settings.with_(**{name: value for name, value in overrides.items() if value is not None})
    backend = LocalBackend.from_settings(settings)
    try:
        result = backend.suggest_hashtags(args.photo.read_bytes(), args.k or settings.hashtags_per_post)
    except (OSError, InvalidImage) as exc:
        print(f"hashtale tag: {args.photo}: {exc}", file=sys.stderr)
        return 1
    hashtags = pipeline.hashtag_rows(CLI_POST_ID, result)
    request = pipeline.story_request(CLI_POST_ID, [h.text for h in hashtags], settings, args.seed)
    story = pipeline.story_row(CLI_POST_ID, request, backend.write_story(request))
    tagger, writer = backend.models()
    if args.json:
        print(json.dumps({
            "photo": str(args.photo),
            "models": {m.name: {"version": m.version, "trained": m.trained} for m in (tagger, writer)},
            "hashtags": [{"text": h.text, "score": h.score} for h in hashtags],
            "story": story.text,
        }, indent=2))
        return 0
    for model in (tagger, writer):
        state = "trained" if model.trained else "UNTRAINED: real architecture, no trained weights yet"
        print(f"{model.name} {model.version} ({state})")
    print()
    for h in hashtags:
        print(f"#{h.text.lstrip('#'):<24} {h.score:.3f}")
    print(f"\nstory (about {' '.join('#' + t.lstrip('#') for t in story.hashtags)}):\n{story.text}")
    return 0
