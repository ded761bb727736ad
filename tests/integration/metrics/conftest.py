"""Fixtures for the metrics, logs and health tests: a scrape of ``GET /metrics`` parsed into
samples, and the pipeline (a real worker and beat against the simulator)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.pipeline.conftest import (  # a fixture, shared with the pipeline tests
    make_pipeline,  # noqa: F401
)

#: The token the tests' API processes expect on GET /metrics.
TOKEN = "metrics-token-for-the-tests-0123456789"


@dataclass
class Scrape:
    """One ``GET /metrics`` body, parsed."""

    text: str

    def families(self) -> Iterator[tuple[str, str, list[tuple[str, dict[str, str], float]]]]:
        """(family name, type, [(sample name, labels, value)]) of every family."""
        for family in text_string_to_metric_families(self.text):
            yield family.name, family.type, [(s.name, dict(s.labels), s.value)
                                             for s in family.samples]

    def names(self) -> set[str]:
        """Every name an expression may use: the families' and their samples' (``_total``,
        ``_bucket``, ``_count``, ``_sum``), whether or not a sample is there now."""
        found: set[str] = set()
        suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum")}
        for name, kind, samples in self.families():
            found.add(name)
            found.update(name + suffix for suffix in suffixes.get(kind, ()))
            found.update(sample for sample, _, _ in samples)
        return found

    def value(self, sample: str, **labels: str) -> float | None:
        """The value of the sample ``sample`` whose labels include ``labels`` (the only one:
        two matches fail the test), None when there is none."""
        matches = [value for _, _, samples in self.families() for name, have, value in samples
                   if name == sample and labels.items() <= have.items()]
        assert len(matches) <= 1, f"{sample}{labels} matches {len(matches)} samples"
        return matches[0] if matches else None


def scrape(base_url: str, token: str = TOKEN) -> Scrape:
    """``GET /metrics`` with ``token``; fails unless it answers 200 in Prometheus' format."""
    response = httpx.get(f"{base_url}/metrics", headers={"Authorization": f"Bearer {token}"},
                         timeout=30)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return Scrape(response.text)
