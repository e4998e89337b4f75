"""Prometheus metrics of one collector (``GET /metrics``).

With several worker processes (``PROMETHEUS_MULTIPROC_DIR`` set, as ``collector serve
--workers N`` does), every worker writes its values to files there and ``/metrics``,
whichever worker answers, adds up all of them.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.requests = Counter("radix_collector_requests", "HTTP requests answered",
                                ["endpoint", "status"], registry=r)
        self.accepted = Counter("radix_collector_events_accepted",
                                "Events acknowledged by Kafka (answered 202)", ["project"],
                                registry=r)
        self.rejected = Counter("radix_collector_events_rejected",
                                "Events refused, by reason (a body that could not be read as "
                                "events counts as one)", ["reason"], registry=r)
        self.produce_seconds = Histogram(
            "radix_collector_kafka_produce_seconds",
            "From handing a request's events to Kafka to the last acknowledgement",
            buckets=(.002, .005, .01, .02, .05, .1, .2, .5, 1, 2, 5), registry=r)
        self.in_flight_requests = Gauge("radix_collector_in_flight_requests",
                                        "POST /collect requests being handled",
                                        multiprocess_mode="livesum", registry=r)
        self.in_flight_events = Gauge("radix_collector_kafka_in_flight_events",
                                      "Events handed to Kafka and not yet acknowledged",
                                      multiprocess_mode="livesum", registry=r)

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        registry = self.registry
        if os.environ.get(MULTIPROC_ENV):
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
