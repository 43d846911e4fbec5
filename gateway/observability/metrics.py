"""Prometheus metrics. Under gunicorn set PROMETHEUS_MULTIPROC_DIR (an empty directory) before the
workers start, and call :func:`child_exit` from gunicorn's ``child_exit`` hook; each worker then
writes its samples to that directory and any worker's /metrics answers for all of them.

The needs-attention count is not kept by any process: it is read from the database at each scrape,
through the counting function the app factory hands to :func:`exposition`.
"""
from __future__ import annotations

import hmac
import os
from typing import Any, Callable, Iterator

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30)

CHECKOUTS = Counter("gateway_checkouts_total", "CheckoutRequests answered, by outcome (accepted, refused, failed).",
                    ["outcome"])
CHARGES = Counter("gateway_charges_total", "Card charge attempts, by outcome (approved, declined, unknown) and reason.",
                  ["outcome", "reason"])
PROCESSOR_SECONDS = Histogram("gateway_processor_seconds", "Time spent in processor calls, by operation and outcome.",
                              ["processor", "operation", "outcome"], buckets=LATENCY_BUCKETS)
STORE_SECONDS = Histogram("gateway_store_notification_seconds",
                          "Time from posting a CompleteOrderRequest to the store's answer, by outcome.",
                          ["outcome"], buckets=LATENCY_BUCKETS)
NOTIFICATION_ATTEMPTS = Counter("gateway_notification_attempts_total",
                                "CompleteOrderRequest delivery attempts, by outcome (delivered, failed).", ["outcome"])
DEAD_LETTERS = Counter("gateway_notifications_dead_total", "Notifications given up on after the last attempt.")
RISK_DECISIONS = Counter("gateway_risk_decisions_total",
                         "Risk-step decisions on card attempts, by kind (allow, challenge, refuse) and reason.",
                         ["kind", "reason"])
# Each process counts the stores it last judged under attack; the scrape keeps the largest count.
STORES_UNDER_ATTACK = Gauge("gateway_stores_under_attack", "Stores whose card attempts must all solve a challenge now.",
                            multiprocess_mode="max")
STORES_UNDER_ATTACK.set(0)  # written once, so every scrape shows it (multiprocess mode lists only written gauges)
HTTP_REQUESTS = Counter("gateway_http_requests_total", "HTTP requests served, by route and status class.",
                        ["endpoint", "status"])


CountByKind = Callable[[], dict[str, int]]


class AttentionCollector:
    """``gateway_needs_attention{kind}`` counted at scrape time by ``count_by_kind``."""

    def __init__(self, count_by_kind: CountByKind) -> None:
        self.count_by_kind = count_by_kind

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily("gateway_needs_attention", "Items an operator must resolve, by kind.", labels=["kind"])
        for kind, count in self.count_by_kind().items():
            family.add_metric([kind], count)
        yield family


def multiprocess_dir() -> str:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")


def exposition(count_by_kind: CountByKind) -> bytes:
    """The whole scrape: every worker's samples (multiprocess mode) or this process's, plus the gauges."""
    if multiprocess_dir():
        samples = CollectorRegistry()
        multiprocess.MultiProcessCollector(samples)  # type: ignore[no-untyped-call]
    else:
        samples = REGISTRY
    gauges = CollectorRegistry()
    gauges.register(AttentionCollector(count_by_kind))
    return generate_latest(samples) + generate_latest(gauges)


def authorized(token: str, header: str) -> bool:
    """With GATEWAY_METRICS_TOKEN set, a scrape must send it as a bearer token."""
    return not token or hmac.compare_digest(header, f"Bearer {token}")


def child_exit(server: Any, worker: Any) -> None:
    """For gateway/gunicorn_conf.py: ``def child_exit(server, worker): metrics.child_exit(server, worker)``."""
    if multiprocess_dir():
        multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]


CONTENT_TYPE = CONTENT_TYPE_LATEST
