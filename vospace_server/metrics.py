"""What the server is doing, in Prometheus terms (served at ``/metrics``, see services/metrics.py).

Counters and histograms live in this process (each replica reports its own; see README
"Metrics"), or, under ``vospace serve --workers`` (``PROMETHEUS_MULTIPROC_DIR`` set, see
workers.py), in files that every worker of the replica writes and any of them sums when
scraped. The gauges read from the shared database at scrape time (UWS jobs by phase, the
copy queue) describe the whole deployment, so every process reports the same.
One ``Metrics`` per Deployment, with its own registry: nothing global.
"""
from __future__ import annotations

import os
from typing import Callable, Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


class Metrics:
    """The instruments the middleware, the transfers and the copy queue update."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()  # what /metrics shows
        shared = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        # The instruments: in the registry itself, or (workers) in files it sums.
        r = CollectorRegistry() if shared else self.registry
        if shared:
            MultiProcessCollector(self.registry, shared)
        self.requests = Counter("vospace_requests", "HTTP requests answered",
                                ["service", "endpoint", "method", "status"], registry=r)
        self.latency = Histogram("vospace_request_duration_seconds",
                                 "Time from request to the end of the response",
                                 ["service", "endpoint"], buckets=LATENCY_BUCKETS, registry=r)
        self.bytes_in = Counter("vospace_received_bytes", "Request body bytes received",
                                ["service"], registry=r)
        self.bytes_out = Counter("vospace_sent_bytes", "Response body bytes sent",
                                 ["service"], registry=r)
        self.transfers = Gauge("vospace_transfers_in_flight",
                               "Data transfers (files, preauth, pkg) in progress",
                               ["service", "direction"], registry=r,
                               multiprocess_mode="livesum")
        self.copy_failures = Counter("vospace_copy_failures",
                                     "Failed attempts to make a blob copy (retried later)",
                                     ["store"], registry=r)
        self.copy_problems = Counter("vospace_copy_problems",
                                     "Copies found missing or corrupt on read or check",
                                     ["store", "problem"], registry=r)

    def add_gauges(self, name: str, help_text: str, labels: list[str],
                   read: Callable[[], Iterable[tuple[tuple[str, ...], float]]]) -> None:
        """A gauge family computed at scrape time by ``read`` (label values, value)."""
        self.registry.register(_ScrapeTimeGauge(name, help_text, labels, read))


class _ScrapeTimeGauge(Collector):
    def __init__(self, name: str, help_text: str, labels: list[str],
                 read: Callable[[], Iterable[tuple[tuple[str, ...], float]]]) -> None:
        self.name, self.help_text, self.labels, self.read = name, help_text, labels, read

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(self.name, self.help_text, labels=self.labels)
        for values, value in self.read():
            family.add_metric(list(values), value)
        yield family

    def describe(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(self.name, self.help_text, labels=self.labels)
