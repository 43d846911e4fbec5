"""Request ids, structured logs, Prometheus metrics and the /metrics endpoint."""
from __future__ import annotations

from flask import Blueprint, Flask, Response, abort, request

from ..config import Settings
from . import logs, metrics, requestid

bp = Blueprint("observability", __name__)


@bp.get("/metrics")
def scrape() -> Response:
    from ..web import services

    if not metrics.authorized(services().settings.metrics_token, request.headers.get("Authorization", "")):
        abort(401, "This endpoint needs the metrics bearer token.")
    return Response(metrics.exposition(services()), content_type=metrics.CONTENT_TYPE)


def init_app(app: Flask, settings: Settings) -> None:
    logs.configure(json_lines=settings.log_json)
    app.register_blueprint(bp)

    @app.before_request
    def start_request() -> None:
        requestid.begin(request.headers.get(requestid.HEADER))

    @app.after_request
    def finish_request(response: Response) -> Response:
        response.headers[requestid.HEADER] = requestid.current()
        metrics.HTTP_REQUESTS.labels(request.endpoint or "unmatched", f"{response.status_code // 100}xx").inc()
        return response
