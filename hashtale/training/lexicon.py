"""Hashtags <-> story words: which hashtags a passage is about, and whether a story names its hashtags.

The hashtag vocabulary is the hashtagger's: the union of the tags in `photos/tag_list.txt` and
`corel5k/vocabulary.txt`. Many of those tags never occur in fairy tales (`ketch`, `accordion`, `tshirt`), so a small
hand-made lexicon maps each hashtag to near words that do ("ketch" -> boat, ship; "tshirt" -> shirt); a passage is
tagged with every hashtag whose own word or near word it contains, and a story "mentions" a hashtag the same way.
"""
from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from hashtale.models.chars import clean_tag

DATASETS = Path(__file__).resolve().parents[3] / "shared" / "datasets"
DEFAULT_TAG_FILES = (DATASETS / "photos" / "tag_list.txt", DATASETS / "corel5k" / "vocabulary.txt")
_WORD = re.compile(r"[a-z]+")

# hashtag -> near words (singular; plurals are matched by `_lemmas`). Hand-made: the hashtag's own word is always
# matched too, so entries list only other words a story would use for the photo's subject.
LEXICON: dict[str, tuple[str, ...]] = {
    # clothing
    "tshirt": ("shirt",), "longsleeve": ("sleeve", "shirt"), "shirt": ("coat",), "pants": ("trousers", "breeches"),
    "shorts": ("trousers", "breeches"), "outwear": ("coat", "cloak", "jacket"), "blazer": ("coat", "jacket"),
    "hoodie": ("hood", "cloak"), "polo": ("shirt",), "undershirt": ("shirt", "vest"), "blouse": ("shirt", "dress"),
    "skirt": ("dress", "petticoat"), "dress": ("gown", "frock"), "shoes": ("shoe", "boot", "slipper"),
    "hat": ("cap", "bonnet", "crown"), "hats": ("hat", "cap", "bonnet"), "watch": ("clock",),
    "kids": ("child", "children", "boy", "girl", "kid"), "clothes": ("clothing", "garment", "cloak"),
    "costume": ("dress", "clothes"),
    # Caltech-101 objects and animals
    "accordion": ("music", "song", "fiddle"), "airplane": ("plane", "fly", "sky", "bird"),
    "anchor": ("ship", "boat", "sea"), "ant": ("ants",), "barrel": ("cask", "tub"), "bass": ("fish",),
    "beaver": ("river", "dam"), "binocular": ("glass", "spy"), "bonsai": ("tree",), "brain": ("head", "wise"),
    "brontosaurus": ("giant", "monster"), "buddha": ("temple", "monk"), "butterfly": ("flower", "moth"),
    "camera": ("picture", "photo"), "cannon": ("gun", "soldier"), "carside": ("car", "road"),
    "ceilingfan": ("wind", "room"), "cellphone": ("phone", "call"), "chair": ("seat", "stool"),
    "chandelier": ("candle", "lamp"), "cougarbody": ("cat", "lion", "tiger"), "cougarface": ("cat", "lion", "tiger"),
    "crab": ("shell", "sea"), "crayfish": ("crab", "river"), "crocodile": ("alligator",),
    "crocodilehead": ("crocodile", "alligator"), "cup": ("mug", "bowl"), "dalmatian": ("dog", "puppy", "pup", "hound"),
    "dollarbill": ("money", "coin", "gold"), "dolphin": ("fish", "sea", "whale"), "dragonfly": ("fly", "insect", "pond"),
    "electricguitar": ("guitar", "music", "song"), "elephant": ("tusk",), "emu": ("bird", "ostrich"),
    "euphonium": ("horn", "trumpet", "music"), "ewer": ("jug", "pitcher", "pot"), "face": ("eye", "nose", "smile"),
    "ferry": ("boat", "ship", "river"), "flamingo": ("bird", "crane", "stork"), "flamingohead": ("bird", "crane"),
    "garfield": ("cat",), "gerenuk": ("antelope", "deer", "goat"), "gramophone": ("music", "song"),
    "grandpiano": ("piano", "music", "song"), "hawksbill": ("turtle", "tortoise", "sea"), "headphone": ("ear", "music"),
    "hedgehog": ("hedge",), "helicopter": ("fly", "sky"), "ibis": ("bird", "stork", "crane"),
    "inlineskate": ("skate", "wheel"), "joshuatree": ("tree", "desert"), "kangaroo": ("jump", "hop"),
    "ketch": ("boat", "ship", "sail"), "lamp": ("candle", "light"), "laptop": ("computer", "book"),
    "leopard": ("panther", "jaguar", "tiger"), "llama": ("camel", "sheep", "goat"), "lobster": ("crab", "fish"),
    "lotus": ("flower", "lily", "pond"), "mandolin": ("guitar", "lute", "music"), "mayfly": ("fly", "insect"),
    "menorah": ("candle", "light"), "metronome": ("clock", "music"), "minaret": ("tower", "mosque"),
    "motorbike": ("bicycle", "bike", "ride"), "nautilus": ("shell", "sea"), "octopus": ("sea", "fish"),
    "okapi": ("zebra", "giraffe"), "pagoda": ("temple", "tower"), "panda": ("bear",), "pigeon": ("dove", "bird"),
    "pizza": ("bread", "cheese", "food"), "platypus": ("duck", "river"), "pyramid": ("egypt", "tomb"),
    "revolver": ("gun", "pistol"), "rhino": ("horn",), "rooster": ("cock", "hen", "chicken"),
    "saxophone": ("horn", "music", "song"), "schooner": ("ship", "boat", "sail"), "scissors": ("knife",),
    "scorpion": ("sting", "spider"), "seahorse": ("sea", "fish"), "snoopy": ("dog", "puppy"),
    "soccerball": ("ball", "football", "play"), "starfish": ("star", "sea", "fish"), "stegosaurus": ("monster", "dragon"),
    "stapler": ("paper", "pin"), "stopsign": ("sign", "road", "stop"), "strawberry": ("berry", "berries", "fruit"),
    "sunflower": ("flower", "sun"), "tick": ("insect", "flea"), "trilobite": ("shell", "stone"),
    "umbrella": ("rain",), "waterlilly": ("lily", "pond", "flower"), "wheelchair": ("chair", "wheel"),
    "wildcat": ("cat", "lynx"), "windsorchair": ("chair", "seat"), "wrench": ("tool", "hammer"),
    "yinyang": ("moon", "sun"),
    # Corel-5k scenes
    "albatross": ("bird", "gull", "sea"), "anemone": ("flower", "sea"), "architecture": ("building", "tower"),
    "arctic": ("snow", "ice", "cold"), "athlete": ("runner", "race", "run"), "bengal": ("tiger",),
    "blooms": ("flower", "blossom"), "booby": ("bird",), "buddhist": ("temple", "monk"), "cactus": ("desert", "thorn"),
    "cafe": ("coffee", "tea", "inn"), "canyon": ("valley", "cliff", "rock"), "caribou": ("reindeer", "deer"),
    "cathedral": ("church",), "close-up": ("eye",), "column": ("pillar",), "cougar": ("lion", "tiger", "cat"),
    "coyote": ("wolf", "jackal"), "crafts": ("basket", "weave"), "crystals": ("crystal", "ice", "diamond"),
    "decoration": ("ornament", "garland"), "display": ("show",), "dunes": ("sand", "desert"),
    "elk": ("deer", "stag"), "f-16": ("plane", "sky"), "fan": ("wind",), "foals": ("foal", "colt", "horse"),
    "formation": ("rock",), "formula": ("car", "race"), "grizzly": ("bear",), "hawaii": ("island", "sea"),
    "hillside": ("hill", "slope"), "hotel": ("inn",), "iguana": ("lizard",), "jet": ("plane", "sky"),
    "kauai": ("island",), "landscape": ("hill", "field", "valley"), "lighthouse": ("light", "tower", "shore"),
    "locomotive": ("train", "engine"), "lynx": ("cat", "wildcat"), "marine": ("sea", "ocean"), "maui": ("island",),
    "monastery": ("monk", "convent", "abbey"), "monks": ("monk", "hermit", "priest"), "moose": ("deer", "stag"),
    "mosque": ("temple",), "museum": ("hall",), "oahu": ("island",), "ocean": ("sea", "waves"),
    "orchid": ("flower",), "peaks": ("peak", "mountain", "summit"), "plaza": ("square", "market"),
    "porcupine": ("hedgehog", "quill"), "prop": ("plane",), "prototype": ("car",), "railroad": ("train", "rail"),
    "reefs": ("reef", "coral", "rock"), "reptile": ("snake", "lizard", "serpent"), "restaurant": ("inn", "dinner"),
    "rodent": ("mouse", "rat", "squirrel"), "runway": ("road", "plane"), "sculpture": ("statue", "carving"),
    "shrubs": ("shrub", "bush", "hedge"), "sidewalk": ("street", "pavement"), "silhouette": ("shadow",),
    "skyline": ("city", "tower"), "slope": ("hill",), "sphinx": ("riddle", "lion"), "swimmers": ("swim", "swimmer"),
    "tundra": ("snow", "ice", "cold"), "vegetation": ("plant", "leaves", "green"), "vehicle": ("cart", "car", "wagon"),
    "vendor": ("market", "seller", "merchant"), "whales": ("whale",), "white-tailed": ("deer",),
    "sea": ("ocean", "waves"), "birds": ("bird",), "boats": ("boat",), "ships": ("ship",), "cars": ("car",),
    "horses": ("horse", "pony"), "bulls": ("bull", "ox", "oxen"), "cubs": ("cub",), "flowers": ("flower", "rose"),
    "tree": ("oak", "pine"), "forest": ("wood", "woods"), "mountain": ("hill",), "river": ("stream", "brook"),
    "cat": ("kitten", "puss"), "plane": ("sky", "fly"), "train": ("engine",),
}


def load_tag_vocabulary(paths=DEFAULT_TAG_FILES) -> list[str]:
    """Every distinct hashtag in the files (whitespace-separated: HARRISON tag lists or one tag a line), sorted."""
    tags = set()
    for path in paths:
        tags.update(clean_tag(t) for t in Path(path).read_text(encoding="utf-8").split())
    return sorted(t for t in tags if t)


def _lemmas(word: str) -> tuple[str, ...]:
    """The word and its singular guesses: 'foxes' -> (foxes, foxe, fox); 'berries' -> (berries, berrie, berry)."""
    forms = [word]
    if word.endswith("s") and len(word) > 3:
        forms.append(word[:-1])
        if word.endswith("es"):
            forms.append(word[:-2])
        if word.endswith("ies"):
            forms.append(word[:-3] + "y")
    return tuple(forms)


class TagLexicon:
    """Which hashtags of `vocabulary` a text is about: a word is the hashtag itself or one of its near words."""

    def __init__(self, vocabulary: list[str], lexicon: dict[str, tuple[str, ...]] = LEXICON):
        self.vocabulary = list(vocabulary)
        self.words: dict[str, tuple[str, ...]] = {}  # hashtag -> the words that name it
        self.index: dict[str, list[str]] = {}  # word -> hashtags it names
        for tag in self.vocabulary:
            own = tuple(w for w in [tag.replace("-", "")] if w.isalpha())
            self.words[tag] = tuple(dict.fromkeys(own + lexicon.get(tag, ())))
            for word in self.words[tag]:
                self.index.setdefault(word, []).append(tag)

    def tags_of(self, text: str) -> list[str]:
        """The hashtags the text names, most often named first (ties: first named first)."""
        counts: Counter[str] = Counter()
        for token in _WORD.findall(text.lower()):
            named = {tag for form in _lemmas(token) for tag in self.index.get(form, ())}
            counts.update(sorted(named))
        return [tag for tag, _ in counts.most_common()]

    def mentions(self, text: str, tags) -> bool:
        """Does the text name any of the hashtags (itself or a near word)?"""
        return bool(set(self.tags_of(text)) & {clean_tag(t) for t in tags})
