"""GET /metrics: every worker's samples and the needs-attention gauge, behind an optional bearer token."""
from __future__ import annotations

from flask import Blueprint, Response, abort, request

from ..observability import metrics
from ..payments.worklist import count_by_kind
from ..services import current

bp = Blueprint("observability", __name__)


@bp.get("/metrics")
def scrape() -> Response:
    services = current()
    if not metrics.authorized(services.settings.metrics_token, request.headers.get("Authorization", "")):
        abort(401, "This endpoint needs the metrics bearer token.")
    return Response(metrics.exposition(lambda: count_by_kind(services)), content_type=metrics.CONTENT_TYPE)
