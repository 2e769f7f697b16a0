"""Reading a process's ``/metrics`` page from the bench and the fault suite: one fetch, Prometheus's own parser.

The bench waits on counters (the worker's first event, a broker loss reported), reads totals after a day, and
splits the paced phase's latency at the worker's acknowledgement with the worker's own histogram. Every reader
goes through here, so a page that does not answer (a worker starting or killed) means the same everywhere: None.
"""

from __future__ import annotations

import math
import urllib.request
from collections.abc import Iterable, Sequence

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

__all__ = ["Sample", "fetch", "histogram_quantile", "samples", "scrape", "total"]


def fetch(port: int, *, host: str = "127.0.0.1", timeout: float = 2.0) -> str | None:
    """The page's text, or None while nothing answers there."""
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=timeout) as r:
            return str(r.read().decode())
    except OSError:
        return None


def samples(text: str) -> list[Sample]:
    return [s for family in text_string_to_metric_families(text) for s in family.samples]


def scrape(port: int, *, timeout: float = 2.0) -> list[Sample] | None:
    text = fetch(port, timeout=timeout)
    return None if text is None else samples(text)


def total(found: Iterable[Sample] | None, name: str, **labels: str) -> float | None:
    """The sum of the samples called ``name`` whose labels include ``labels``; None when there is none."""
    matching = [s.value for s in found or () if s.name == name and labels.items() <= s.labels.items()]
    return sum(matching) if matching else None


def histogram_quantile(before: Sequence[Sample], after: Sequence[Sample], name: str, q: float) -> float | None:
    """The ``q`` quantile of what histogram ``name`` observed between two scrapes, interpolated inside its
    bucket as Prometheus's ``histogram_quantile`` does (an estimate: its precision is the bucket's width)."""
    def buckets(found: Sequence[Sample]) -> dict[float, float]:
        return {float(s.labels["le"]): s.value for s in found if s.name == f"{name}_bucket"}

    start, end = buckets(before), buckets(after)
    bounds = sorted(end)
    counts = [end[b] - start.get(b, 0.0) for b in bounds]
    if not counts or counts[-1] <= 0:
        return None
    rank = q * counts[-1]
    lower, below = 0.0, 0.0
    for bound, count in zip(bounds, counts, strict=True):
        if count >= rank:
            if math.isinf(bound):
                return lower  # above the last finite bucket: its bound is all that is known
            return lower + (bound - lower) * (rank - below) / (count - below) if count > below else bound
        lower, below = bound, count
    return None
