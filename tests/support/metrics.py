"""Reading a process's Prometheus /metrics endpoint in tests (a helper module: no fixtures)."""
from __future__ import annotations

import requests
from prometheus_client.parser import text_string_to_metric_families


def scrape(bind: str) -> dict[tuple[str, tuple], float]:
    """(sample name, sorted labels) -> value, from a /metrics endpoint."""
    text = requests.get(f"http://{bind}/metrics", timeout=10).text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def sample(samples: dict, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)
