"""HARRISON-format hashtag data: a folder with `data_list.txt` (one image path per line, relative to
the folder) and `tag_list.txt` (the space-separated hashtags of the same line). Reads the real
HARRISON lists, the shared photos and the admin-review exports alike."""
from __future__ import annotations

import os
import random
from dataclasses import dataclass
from pathlib import Path

DATA_LIST = "data_list.txt"
TAG_LIST = "tag_list.txt"


@dataclass(frozen=True)
class Example:
    image: Path  # absolute, normalised path
    tags: list[str]


def read_split(folder: str | Path) -> list[Example]:
    """Examples in file order. Posts without any hashtag are kept (they count in evaluation)."""
    folder = Path(folder)
    paths = (folder / DATA_LIST).read_text(encoding="utf-8").splitlines()
    tag_lines = (folder / TAG_LIST).read_text(encoding="utf-8").splitlines()
    # a trailing empty line in one file only is not a mismatch
    while paths and not paths[-1].strip():
        paths.pop()
    while len(tag_lines) > len(paths) and not tag_lines[-1].strip():
        tag_lines.pop()
    if len(paths) != len(tag_lines):
        raise ValueError(f"{folder}: {len(paths)} images but {len(tag_lines)} tag lines")
    root = folder.resolve()
    # normpath, not resolve(): one syscall-free string operation per line (HARRISON has 57k)
    return [Example(image=Path(os.path.normpath(root / p.strip())), tags=_dedupe(line.split()))
            for p, line in zip(paths, tag_lines)]


def write_split(folder: str | Path, examples: list[Example]) -> Path:
    """Write HARRISON lists with image paths relative to `folder`, so the folder can be read anywhere
    the images are at the same relative place."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rel = [os.path.relpath(e.image, folder.resolve()) for e in examples]
    (folder / DATA_LIST).write_text("".join(f"{p}\n" for p in rel), encoding="utf-8")
    (folder / TAG_LIST).write_text("".join(f"{' '.join(e.tags)} \n" for e in examples), encoding="utf-8")
    return folder


def holdout_split(examples: list[Example], fraction: float, seed: int) -> tuple[list[Example], list[Example]]:
    """(kept, held_out): a fixed-seed random `fraction` held out, both in original file order."""
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    held = set(order[: round(len(examples) * fraction)])
    kept = [e for i, e in enumerate(examples) if i not in held]
    out = [e for i, e in enumerate(examples) if i in held]
    return kept, out


def _dedupe(tags: list[str]) -> list[str]:
    return list(dict.fromkeys(tags))
