"""What a server worker prepares before its first shopper (gunicorn's post_worker_init, gateway/gunicorn_conf.py).

Jinja compiles a template at its first use, marshmallow builds its URL pattern at its first
validation, and the statements run on the database driver are compiled at their first run: in a
fresh worker the first checkout took 56 ms of CPU instead of 3, the first page view 41 ms instead
of 3, and the first purchase compiled a dozen statements. In a rush every worker's first shoppers waited for that; now the
worker does it before it accepts a connection. Only servers do: an app made for a test or a
command compiles what it uses, when it uses it.
"""
from __future__ import annotations

from flask import Flask

from .. import prepared
from ..protocol import schemas

SHOPPER_TEMPLATES = ("base.html", "pay.html", "_card_fields.html", "_order.html", "status.html", "message.html")


def warm_worker(wsgi: object) -> None:
    """The worker's application, if it is the gateway's (gunicorn can serve another app with these settings)."""
    if isinstance(wsgi, Flask) and "gateway" in wsgi.extensions:
        warm_up(wsgi)


def warm_up(app: Flask) -> None:
    for name in SHOPPER_TEMPLATES:
        app.jinja_env.get_template(name)
    schemas.prepare()
    prepared.warm(app.extensions["gateway"].db.engine.dialect)
