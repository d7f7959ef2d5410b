"""The `local` inference backend (real models in this process) and `hashtale tag`, which uses it."""
from __future__ import annotations

import json
import subprocess
import sys
import threading

import pytest

from hashtale.inference import InferenceUnavailable, InvalidImage, StoryRequest, make_backend
from hashtale.inference.local import LocalBackend
from hashtale.settings import PROJECT_ROOT, Settings

K = 5
STORY_LENGTH = 80  # characters


@pytest.fixture(scope="module")
def backend() -> LocalBackend:
    return make_backend(Settings(inference_backend="local", torch_threads=1))


def test_suggests_the_emitted_set_of_distinct_hashtags_with_attention(backend, coffee_jpeg):
    result = backend.suggest_hashtags(coffee_jpeg, K)
    tagger, _ = backend.models()
    assert (result.model_name, result.model_version) == (tagger.name, tagger.version)
    assert 1 <= len(result.hashtags) <= K and len({h.text for h in result.hashtags}) == len(result.hashtags)
    rows, cols = tagger.attention_shape
    for tag in result.hashtags:
        assert 0.0 <= tag.score <= 1.0
        assert tag.attention_shape == (rows, cols) and len(tag.attention) == rows * cols
        assert sum(tag.attention) == pytest.approx(1.0, abs=1e-4)


def test_the_same_photo_gets_the_same_hashtags(backend, photo_paths):
    image = photo_paths[0].read_bytes()
    assert backend.suggest_hashtags(image, K) == backend.suggest_hashtags(image, K)


def test_a_story_depends_only_on_its_request(backend):
    request = StoryRequest(hashtags=("cup", "coffee"), length=STORY_LENGTH, temperature=0.8, top_k=20, random_seed=7)
    first = backend.write_story(request)
    assert first.text and first == backend.write_story(request)
    other = backend.write_story(StoryRequest(("cup", "coffee"), STORY_LENGTH, 0.8, 20, random_seed=8))
    assert other.text != first.text


def test_a_bad_image_is_refused(backend):
    with pytest.raises(InvalidImage):
        backend.suggest_hashtags(b"GIF89a not a photo", K)


def test_unloadable_models_are_unavailable(tmp_path):
    broken = LocalBackend.from_settings(Settings(hashtagger_checkpoint=str(tmp_path / "missing.pt")))
    with pytest.raises(InferenceUnavailable, match="could not be loaded"):
        broken.check_ready()


def test_concurrent_first_calls_load_the_models_once():
    fresh = LocalBackend.from_settings(Settings(torch_threads=1))
    loaded = []
    threads = [threading.Thread(target=lambda: loaded.append(fresh.models())) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(loaded) == 4 and all(pair[0] is loaded[0][0] and pair[1] is loaded[0][1] for pair in loaded)


@pytest.mark.slow  # `hashtale tag` in a process of its own
def test_hashtale_tag_prints_hashtags_and_a_story(photo_paths):
    out = subprocess.run([sys.executable, "-m", "hashtale.cli", "tag", str(photo_paths[0]), "--length", str(STORY_LENGTH),
                          "--json"], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300, check=True)
    result = json.loads(out.stdout)
    assert 1 <= len(result["hashtags"]) <= K and result["story"]  # the emitted set, at most K
    assert len(result["models"]) == 2  # hashtagger and storyteller, each with its version
    assert all(isinstance(m["trained"], bool) for m in result["models"].values())
