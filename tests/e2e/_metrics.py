"""Reading a real process's metrics as Prometheus would: prometheus_client's parser."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families


def parse(text: str) -> dict[str, list]:
    """Metric family name -> its samples."""
    return {family.name: family.samples for family in text_string_to_metric_families(text)}


def scrape(url: str, token: str | None = None) -> dict[str, list]:
    """Metric family name -> its samples, as prometheus_client's parser reads them."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = httpx.get(f"{url}/metrics", headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return parse(response.text)


def value(families: dict[str, list], sample_name: str, **labels: str) -> float:
    for sample in (s for samples in families.values() for s in samples):
        if sample.name == sample_name and all(sample.labels.get(k) == v
                                              for k, v in labels.items()):
            return float(sample.value)
    return 0.0
