"""The Triton repository's configs, read as Triton reads them (no server): the settings that the in-process
backend takes from the environment and Triton from config.pbtxt have the same defaults in both places."""
from __future__ import annotations

import pytest

from hashtale.inference.repository import MODELS, REPOSITORY, read_config, weights_path
from hashtale.models.serving import parameter
from hashtale.settings import Settings

HASHTAGGER_CONFIGS = sorted((REPOSITORY / "hashtagger").glob("**/*.pbtxt"))  # config.pbtxt and configs/gpu.pbtxt


@pytest.mark.parametrize("path", HASHTAGGER_CONFIGS, ids=lambda p: str(p.relative_to(REPOSITORY)))
def test_the_hashtagger_configs_hold_the_service_defaults(path):
    config, defaults = read_config(path), Settings()
    assert parameter(config, "precision") == defaults.encoder_precision
    assert int(parameter(config, "max_image_pixels")) == defaults.max_image_pixels
    assert int(parameter(config, "max_image_side")) == defaults.max_image_side


def test_every_model_names_its_weights_in_its_version_folder():
    for model in MODELS:
        config = read_config(REPOSITORY / model / "config.pbtxt")
        assert config["name"] == model and config["backend"] == "python"
        assert weights_path(REPOSITORY, model).parent == REPOSITORY / model / "1"
