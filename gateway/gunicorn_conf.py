"""Gunicorn settings for the gateway: `gunicorn -c python:gateway.gunicorn_conf 'gateway:create_app()'` (the Procfile).

Shipped inside the package, so the same command works from a checkout and from an installed wheel.

The gateway spends almost all of a request waiting on the network (the processor, the store's
notification URL), so each worker serves many requests at once on threads: a shopper opening the
hosted page is never queued behind pay submissions that wait on a slow processor. Every setting
can be overridden from the environment.
"""
import glob
import os
import tempfile


def _number(name: str, default: float) -> float:
    return float(os.environ.get(name) or default)


bind = os.environ.get("GUNICORN_BIND") or f"0.0.0.0:{os.environ.get('PORT') or 8000}"
# One more worker than cores: each worker runs Python on one core at a time, and connections are
# not spread evenly between workers, so a spare one keeps both cores busy during a rush.
workers = int(_number("WEB_CONCURRENCY", (os.cpu_count() or 1) + 1))
worker_class = "gthread"  # measured against gevent with bench/load.py: no faster, and no monkey-patching
# Requests in flight per worker, mostly waiting. A shopper's connection stays with the worker that
# accepted it, and the kernel does not spread them evenly: in bench/load.py's 100-shopper sale one of
# three workers held 83 of them, and with 64 threads the pay submissions beyond 64 queued behind a
# whole processor-and-store wait (the sale took 4.1-4.5 s instead of 2.5, in 7 runs of 26).
threads = int(_number("GUNICORN_THREADS", 128))
# Database connections per worker. A thread holds one only inside a transaction (never while it
# waits on the processor or the store), so a few serve many threads; a thread that finds none free
# waits for one. workers x (pool + 4 for page views' lookups, gateway/db.py) must stay below
# PostgreSQL's max_connections (100 by default): bench/load.py with a pool as large as the threads ran
# out of server connections.
os.environ.setdefault("GATEWAY_DB_POOL_SIZE", str(min(threads, 16)))

# A shopper request stays inside GATEWAY_REQUEST_BUDGET (25 s by default): the processor call is
# bounded by GATEWAY_PROCESSOR_TIMEOUT and the in-request notification by what is left. A gthread
# worker is never killed for a slow request (its main loop keeps beating), and these limits sit
# well above the worst request path, so neither a restart nor the watchdog cuts a charge in half.
timeout = int(_number("GUNICORN_TIMEOUT", 120))
graceful_timeout = int(_number("GUNICORN_GRACEFUL_TIMEOUT", 90))  # finish charges in flight on restart
# Longer than a load balancer's or browser's idle connection: a server that closes an idle
# connection just as the client reuses it makes that request fail (bench/load.py saw resets at 5 s).
keepalive = int(_number("GUNICORN_KEEPALIVE", 75))
backlog = 2048
accesslog = os.environ.get("GUNICORN_ACCESS_LOG", "-") or None

# Prometheus counters are kept per worker process and summed at scrape time (prometheus_client's
# multiprocess mode): a fresh directory at every start, or the one PROMETHEUS_MULTIPROC_DIR names,
# emptied of the samples of a previous run.
_metrics_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or tempfile.mkdtemp(prefix="gateway-metrics-")
os.environ["PROMETHEUS_MULTIPROC_DIR"] = _metrics_dir
for _stale in glob.glob(os.path.join(_metrics_dir, "*.db")):
    os.remove(_stale)

# Settings are checked here, in the master, before any worker starts: an unsafe one stops gunicorn with
# one line naming it and exit status 2 (a worker failing to load the app would be restarted over and over).
from gateway.config import settings_or_exit  # noqa: E402 - after the environment above is complete

settings_or_exit()


def child_exit(server, worker):  # type: ignore[no-untyped-def]
    """A worker that exits leaves its gauges' samples behind; mark them dead so scrapes drop them."""
    from gateway.observability import metrics

    metrics.child_exit(server, worker)


def post_worker_init(worker):  # type: ignore[no-untyped-def]
    """Compile the shopper pages and patterns before the first shopper comes (gateway/web/warmup.py)."""
    from gateway.web.warmup import warm_worker

    warm_worker(worker.wsgi)
