"""The Triton model repository (triton_repo/): where it is, how its config.pbtxt files are read, and
`hashtale export`, which puts the models' checkpoints where the repository's model.py files load them.

config.pbtxt is read with the protobuf text parser of Triton's own `ModelConfig` message and turned into the
dict Triton hands a Python-backend model as `args["model_config"]` (proto field names), so the launcher, the
export and the model.py files all read a parameter with the one accessor `hashtale.models.serving.parameter`.

The Python backend runs the same PyTorch code as the in-process backend, so the exported artefact is the
self-describing checkpoint itself: copied byte for byte (the model version, a hash of the file, is then the
same through Triton and in-process). When no checkpoint exists yet, the untrained fallback (seeded, so the
same in every process) is written to a file, so the server and any in-process comparison load the same weights.

Each model's config.pbtxt names its weights file with the parameter `weights`, relative to the version folder
`<repository>/<model>/1/`. Exported files are build artefacts (gitignored); the launcher exports when they are
missing or older than their source checkpoint.
"""
from __future__ import annotations

import argparse
import shutil
from dataclasses import asdict
from pathlib import Path

from hashtale.models.serving import parameter
from hashtale.settings import PROJECT_ROOT, Settings

REPOSITORY = PROJECT_ROOT / "triton_repo"
MODELS = ("hashtagger", "storyteller")
MODEL_VERSION_DIR = "1"
CONFIG_FILE = "config.pbtxt"


def read_config(path: str | Path) -> dict:
    """A config.pbtxt file -> the dict Triton passes a Python-backend model as `args["model_config"]`."""
    from google.protobuf import json_format, text_format
    from tritonclient.grpc import model_config_pb2

    config = text_format.Parse(Path(path).read_text(), model_config_pb2.ModelConfig())
    return json_format.MessageToDict(config, preserving_proto_field_name=True)


def model_config(repository: str | Path, model: str) -> dict:
    """`model`'s config.pbtxt in `repository`, as `read_config` returns it."""
    return read_config(Path(repository) / model / CONFIG_FILE)


def config_parameter(repository: str | Path, model: str, key: str) -> str:
    """The string value of parameter `key` in `model`'s config.pbtxt."""
    try:
        return parameter(model_config(repository, model), key)
    except KeyError:
        raise ValueError(f"{model}/{CONFIG_FILE} has no {key!r} parameter") from None


def weights_path(repository: str | Path, model: str) -> Path:
    """Where `model`'s config.pbtxt says its weights are."""
    return Path(repository) / model / MODEL_VERSION_DIR / config_parameter(repository, model, "weights")


def source_checkpoint(model: str, settings: Settings) -> Path:
    """The checkpoint the in-process backend would load: the configured one, else the shipped one."""
    if model == "hashtagger":
        from hashtale.models.hashtagger_runtime import DEFAULT_CHECKPOINT as shipped

        configured = settings.hashtagger_checkpoint
    else:
        from hashtale.models.storyteller_runtime import SHIPPED_CHECKPOINT as shipped

        configured = settings.storyteller_checkpoint
    return Path(configured) if configured else shipped


def save_untrained(model: str, dest: Path) -> Path:
    """The seeded untrained fallback of `model`, as a checkpoint file."""
    from hashtale.models.checkpoint import save_checkpoint

    if model == "hashtagger":
        from hashtale.models.hashtagger_runtime import CHECKPOINT_KIND, Tagger

        tagger = Tagger.untrained()
        args = {"arch": tagger.arch, "encoder": asdict(tagger.encoder.config), "config": asdict(tagger.decoder.config)}
        net, vocab = tagger.decoder, tagger.vocab.tokens
    else:
        from hashtale.models.storyteller_runtime import CHECKPOINT_KIND, StoryWriter

        writer = StoryWriter.load(None)  # the untrained fallback: save_untrained runs only without a checkpoint
        net, args, vocab = writer.model, writer.model.model_args, writer.vocab.tokens
    return save_checkpoint(dest, kind=CHECKPOINT_KIND, model=net, model_args=args, vocab=vocab, step=0, metrics={},
                           extra={"untrained": True})


def is_stale(repository: str | Path, model: str, settings: Settings) -> bool:
    """The exported weights are missing, or older than the checkpoint they come from."""
    dest = weights_path(repository, model)
    if not dest.exists():
        return True
    source = source_checkpoint(model, settings)
    return source.exists() and source.stat().st_mtime > dest.stat().st_mtime


def export_weights(repository: str | Path, model: str, settings: Settings, source: str | Path | None = None) -> Path:
    dest = weights_path(repository, model)
    dest.parent.mkdir(parents=True, exist_ok=True)
    source = Path(source) if source else source_checkpoint(model, settings)
    if not source.exists():
        return save_untrained(model, dest)
    tmp = dest.with_suffix(dest.suffix + ".tmp")
    shutil.copyfile(source, tmp)
    tmp.replace(dest)  # atomic: a server starting meanwhile never sees half a file
    return dest


def export_stale_weights(repository: str | Path, settings: Settings | None = None) -> list[Path]:
    """Export every model whose exported weights are missing or out of date."""
    settings = settings or Settings.from_env()
    return [export_weights(repository, model, settings) for model in MODELS if is_stale(repository, model, settings)]


# `hashtale export`


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repository", default=str(REPOSITORY), help="Triton model repository (default: triton_repo/)")
    parser.add_argument("--hashtagger", help="checkpoint to export (default: HASHTAGGER_CHECKPOINT or the shipped one)")
    parser.add_argument("--storyteller", help="checkpoint to export (default: STORYTELLER_CHECKPOINT or the shipped one)")
    parser.add_argument("--force", action="store_true", help="export even when the exported weights are up to date")


def run(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    sources = {"hashtagger": args.hashtagger, "storyteller": args.storyteller}
    for model in MODELS:
        if args.force or sources[model] or is_stale(args.repository, model, settings):
            dest = export_weights(args.repository, model, settings, sources[model])
            print(f"{model}: {dest}")
        else:
            print(f"{model}: {weights_path(args.repository, model)} is up to date")
    return 0
