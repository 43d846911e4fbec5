"""Request ids, structured logs and Prometheus metrics (the /metrics endpoint is gateway.web.metrics;
the hooks that tie them to the web app are observability.app, kept apart so importing a part never imports Flask)."""
