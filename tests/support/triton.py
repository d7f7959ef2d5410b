"""Triton helpers for tests and benchmarks: variants of the model repository, and the server's batch statistics."""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Callable

from hashtale.inference.repository import CONFIG_FILE, REPOSITORY, export_stale_weights
from hashtale.inference.tritonserver import TritonServer


def variant_repository(dest: str | Path, edit: Callable[[str, str], str], source: str | Path = REPOSITORY) -> Path:
    """A copy of `source` whose config.pbtxt files are rewritten by `edit(model, text)` (tests and bench compare
    configurations). model.py files are copied and weights files symlinked: the same code and the same weights."""
    source, dest = Path(source), Path(dest)
    export_stale_weights(source)
    for config in sorted(source.glob(f"*/{CONFIG_FILE}")):
        model = config.parent.name
        (dest / model).mkdir(parents=True)
        (dest / model / CONFIG_FILE).write_text(edit(model, config.read_text()))
        for version in (p for p in config.parent.iterdir() if p.is_dir()):
            (dest / model / version.name).mkdir()
            for item in version.iterdir():
                if item.suffix == ".py":
                    shutil.copy2(item, dest / model / version.name / item.name)
                elif item.is_file():
                    (dest / model / version.name / item.name).symlink_to(item.resolve())
    return dest


def executions_by_batch_size(server: TritonServer, model: str) -> dict[int, int]:
    """batch size -> executions so far, from the server's statistics endpoint (proves requests were batched)."""
    import tritonclient.http as httpclient

    client = httpclient.InferenceServerClient(server.http_url)
    try:
        stats = client.get_inference_statistics(model)["model_stats"][0]
    finally:
        client.close()
    return {int(b["batch_size"]): int(b["compute_infer"]["count"]) for b in stats.get("batch_stats", [])}
