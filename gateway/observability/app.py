"""The web app's hooks: a request id in and out, the request counted, logs configured."""
from __future__ import annotations

from flask import Flask, Response, request

from ..config import Settings
from . import logs, metrics, requestid


def init_app(app: Flask, settings: Settings) -> None:
    logs.configure(json_lines=settings.log_json)

    @app.before_request
    def start_request() -> None:
        requestid.begin(request.headers.get(requestid.HEADER))

    @app.after_request
    def finish_request(response: Response) -> Response:
        response.headers[requestid.HEADER] = requestid.current()
        metrics.HTTP_REQUESTS.labels(request.endpoint or "unmatched", f"{response.status_code // 100}xx").inc()
        return response
