"""The process's metrics, in Prometheus's client: counted where things happen, read by `GET /metrics`.

With several workers each process counts into files under PROMETHEUS_MULTIPROC_DIR (set by `serve`
before the workers start, emptied at each start), and a scrape of any worker adds them all up. What
the database knows (trades and refunds still unknown, how late the sweeper is) is read at the scrape
itself, by the endpoint.

Counting costs the hot paths a dictionary lookup and an increment: the labelled children are kept.
"""

import os
import shutil
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics, generate_latest
from prometheus_client import multiprocess as prometheus_multiprocess

disable_created_metrics()  # a `_created` series beside every counter only doubles the scrape

MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"
LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

REQUESTS = Counter(
    "mall_http_requests", "HTTP requests answered, by route template and status.", ["method", "route", "status"]
)
LATENCY = Histogram(
    "mall_http_request_duration_seconds",
    "Time to answer, by route template.",
    ["method", "route"],
    buckets=LATENCY_BUCKETS,
)
ORDERS = Counter("mall_orders", "Orders placed and their outcomes recorded, by kind.", ["kind", "event"])
ERRORS = Counter("mall_dependency_errors", "Requests that failed on a dependency, by which.", ["dependency"])
POSTER_CACHE = Counter(
    "mall_poster_cache",
    "Poster requests by where the image came from: hit, miss (drawn), joined (a drawing under way), not_modified.",
    ["result"],
)
SWEEPS = Counter("mall_sweeper_runs", "Sweeper passes, by outcome.", ["outcome"])

_requests: dict[tuple[str, str, int], object] = {}
_latencies: dict[tuple[str, str], object] = {}
_orders: dict[tuple[str, str], object] = {}


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    key = (method, route, status)
    counter = _requests.get(key)
    if counter is None:
        counter = _requests[key] = REQUESTS.labels(method, route, str(status))
    counter.inc()  # type: ignore[attr-defined]
    latency = _latencies.get(key[:2])
    if latency is None:
        latency = _latencies[key[:2]] = LATENCY.labels(method, route)
    latency.observe(seconds)  # type: ignore[attr-defined]


def count_order(kind: str, event: str) -> None:
    counter = _orders.get((kind, event))
    if counter is None:
        counter = _orders[(kind, event)] = ORDERS.labels(kind, event)
    counter.inc()  # type: ignore[attr-defined]


def prepare_multiprocess(var_dir: Path) -> None:
    """Before several workers start: a directory of their own for their counts, emptied (a worker's files
    from an earlier run would be added in)."""
    directory = var_dir / "metrics"
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    os.environ[MULTIPROCESS_DIR] = str(directory)


def exposition() -> bytes:
    """Every worker's counts in the text format (this process's alone when it is the only one)."""
    if os.environ.get(MULTIPROCESS_DIR):
        registry = CollectorRegistry()
        prometheus_multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest()
