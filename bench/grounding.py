"""Does each hashtag's heat map point at that hashtag's part of the photo? A pointing game on composites.

    .venv/bin/python -m bench.grounding [--checkpoint PATH] [--pairs 400] [--out var/grounding]

Composites are made from the held-out 20 % of `photos/` (the training hold-out: seed 20161605): two photos of
different tags, each the centre square the encoder would see, shrunk to half the input side and pasted on the
left and right halves of a grey square (so the encoder's centre crop keeps both). The model decodes each
composite as the service does (float32 encoder, its own min_score, at most 5 tags). For every emitted tag that
belongs to one of the two photos, the mass of its served heat map (`TagPrediction.attention`) on that photo's
half is measured (each grid cell split
between the halves by the share of its width on each side). Printed: how often both tags are emitted, the
pointing accuracy (share of such tags with more than half their mass on their own half), the mean mass on
the own half, and the same for the tags' positions swapped (the chance level of a map that ignores the tag
is 0.5). Two more views of the same composites, for every pair and both of its tags:
- "second step": the decoder is fed <start> and one tag, and the decoder attention of the step that follows is
  scored against the OTHER tag's half (what the step looks at once the first tag is said; the first step's
  attention is computed before any tag is chosen, so it cannot be specific to one);
- "class map": for a model with the auxiliary multi-label head, that head applied to each location (its logit
  is the mean of these; Zhou et al. 2016's class activation map), softmax over locations, for each true tag.
Writes <out>/grounding.json and <out>/grounding.png (examples: composite + one panel per emitted tag).
"""
from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from hashtale.models.image import decode_image, to_tensor
from hashtale.models.hashtagger_runtime import Tagger
from hashtale.models.vocab import START_ID
from hashtale.settings import PROJECT_ROOT
from hashtale.training.attention_png import draw
from hashtale.training.harrison import holdout_split, read_split
from hashtale.training.train_hashtagger import DEFAULT_SPLIT_SEED

PHOTOS_DIR = PROJECT_ROOT.parent / "shared" / "datasets" / "photos"
HOLDOUT = 0.2  # as the shipped model was trained
PAIR_SEED = 0
GREY = (128, 128, 128)
BATCH = 32
EXAMPLES = 4  # composites drawn into the figure
K = 5


def composite(left: Image.Image, right: Image.Image, size: int) -> Image.Image:
    """Two photos' centre squares at size/2 px on the left and right halves of a grey size x size square."""
    half = size // 2
    canvas = Image.new("RGB", (size, size), GREY)
    for i, photo in enumerate((left, right)):
        w, h = photo.size
        side = min(w, h)
        square = photo.crop(((w - side) // 2, (h - side) // 2, (w + side) // 2, (h + side) // 2))
        canvas.paste(square.resize((half, half), Image.BICUBIC), (i * half, (size - half) // 2))
    return canvas


def left_share(grid: np.ndarray) -> float:
    """Attention mass (rows, cols) on the left half of the image: a cell counts by its width share there."""
    cols = grid.shape[1]
    edges = np.linspace(0.0, 1.0, cols + 1)  # cell borders as a fraction of the width
    share = np.clip((0.5 - edges[:-1]) / (edges[1:] - edges[:-1]), 0.0, 1.0)  # (cols,) part of each column left of 0.5
    return float((grid.sum(axis=0) * share).sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", default=None, help="hashtagger checkpoint (default: the shipped one)")
    parser.add_argument("--pairs", type=int, default=400)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=str(PROJECT_ROOT / "var" / "grounding"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    tagger = Tagger.load(args.checkpoint)
    _, held = holdout_split(read_split(PHOTOS_DIR), HOLDOUT, DEFAULT_SPLIT_SEED)
    held = [e for e in held if len(e.tags) == 1 and e.tags[0] in tagger.vocab.index]
    rng = random.Random(PAIR_SEED)
    pairs = []
    while len(pairs) < args.pairs:
        a, b = rng.sample(held, 2)
        if a.tags != b.tags:
            pairs.append((a, b))
    images = [composite(decode_image(a.image.read_bytes()).image, decode_image(b.image.read_bytes()).image,
                        tagger.input_size) for a, b in pairs]
    decoded = []
    with torch.inference_mode():
        for start in range(0, len(images), BATCH):
            x = torch.stack([to_tensor(img, tagger.input_size) for img in images[start:start + BATCH]])  # (B, 3, S, S)
            decoded += tagger.suggest(x, K)
    second, class_map = _forced_views(tagger, images, pairs)
    own, swapped, both, hits, n_tags = [], [], 0, 0, 0
    for (a, b), preds in zip(pairs, decoded):
        found = {p.text for p in preds}
        both += a.tags[0] in found and b.tags[0] in found
        for p in preds:
            if p.text not in (a.tags[0], b.tags[0]):
                continue
            on_left = left_share(p.attention)
            mass = on_left if p.text == a.tags[0] else 1.0 - on_left
            own.append(mass)
            swapped.append(1.0 - mass)
            hits += mass > 0.5
            n_tags += 1
    result = {"checkpoint": args.checkpoint or "shipped", "model": f"{tagger.name} {tagger.version}",
              "composites": len(pairs), "input_size": tagger.input_size, "grid": list(tagger.attention_shape),
              "both_tags_emitted": both / len(pairs), "tags_of_the_pair_emitted": n_tags,
              "mean_tags_emitted": sum(map(len, decoded)) / len(decoded),
              "pointing_accuracy": hits / max(n_tags, 1), "mean_mass_on_own_half": float(np.mean(own)) if own else 0.0,
              "mean_mass_on_other_half": float(np.mean(swapped)) if swapped else 0.0,
              "second_step_pointing_accuracy": float(np.mean([m > 0.5 for m in second])),
              "second_step_mean_mass_on_own_half": float(np.mean(second))}
    if class_map:
        result["class_map_pointing_accuracy"] = float(np.mean([m > 0.5 for m in class_map]))
        result["class_map_mean_mass_on_own_half"] = float(np.mean(class_map))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "grounding.json").write_text(json.dumps(result, indent=1))
    shown = [i for i, ((a, b), preds) in enumerate(zip(pairs, decoded))
             if {a.tags[0], b.tags[0]} & {p.text for p in preds}][:EXAMPLES]
    panels = []
    for i in shown:
        path = draw(images[i], decoded[i], out / f"example{i}.png", f"{pairs[i][0].tags[0]} | {pairs[i][1].tags[0]}",
                    tagger.input_size)
        panels.append(Image.open(path).convert("RGB"))
    if panels:
        width = max(p.width for p in panels)
        figure = Image.new("RGB", (width, sum(p.height for p in panels)), (255, 255, 255))
        top = 0
        for p in panels:
            figure.paste(p, (0, top))
            top += p.height
        figure.save(out / "grounding.png")
    print(json.dumps(result, indent=1))


@torch.inference_mode()
def _forced_views(tagger: Tagger, images: list[Image.Image], pairs) -> tuple[list[float], list[float]]:
    """Per pair and tag: the mass on that tag's half of (the attention of the step after the other tag was fed,
    the auxiliary head's class map)."""
    decoder, second, class_map = tagger.decoder, [], []
    for start in range(0, len(images), BATCH):
        x = torch.stack([to_tensor(img, tagger.input_size) for img in images[start:start + BATCH]])  # (B, 3, S, S)
        feats = tagger.encode(x)  # (B, L, D)
        batch = pairs[start:start + BATCH]
        ids = torch.tensor([[tagger.vocab.index[a.tags[0]], tagger.vocab.index[b.tags[0]]] for a, b in batch])  # (B, 2)
        for first, other in ((0, 1), (1, 0)):  # feed one tag, score the next step's attention on the other's half
            state = decoder.init_state(feats)
            _, _, state = decoder.step(feats, torch.full((len(batch),), START_ID), state)
            _, alpha, _ = decoder.step(feats, ids[:, first], state)  # (B, L)
            for row in range(len(batch)):
                on_left = left_share(alpha[row].numpy().reshape(tagger.attention_shape))
                second.append(on_left if other == 0 else 1.0 - on_left)
        maps = decoder.tag_maps(feats) if hasattr(decoder, "tag_maps") else None  # (B, L, V)
        if maps is not None:
            for row in range(len(batch)):
                for side in (0, 1):
                    grid = maps[row, :, ids[row, side]].numpy().reshape(tagger.attention_shape)
                    on_left = left_share(grid)
                    class_map.append(on_left if side == 0 else 1.0 - on_left)
    return second, class_map


if __name__ == "__main__":
    main()
