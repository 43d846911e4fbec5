"""`GET /`: what this service is, for whoever opens its address in a browser."""
from __future__ import annotations

from flask import Blueprint, render_template

from . import public_url

bp = Blueprint("home", __name__)


@bp.get("/")
def home() -> str:
    return render_template("home.html", checkout_url=public_url("/checkout"), post_order_url=public_url("/post-order"))
