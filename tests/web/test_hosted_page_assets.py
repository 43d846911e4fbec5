"""The page's own assets: content-hashed URLs, gzip, cached for a year, and a light page overall."""
from __future__ import annotations

import gzip
import re

from gateway.web.assets import ASSETS

from ..flow_helpers import open_session
from ..protocol_helpers import CARDS, card_form

GZIP = {"Accept-Encoding": "gzip, deflate, br"}
PAGE_BUDGET = 50 * 1024


def asset_urls(html: str) -> list[str]:
    return sorted(set(re.findall(r'(?:src|href)="(/assets/[^"]+)"', html)))


def test_assets_have_content_hashed_urls_and_are_cached_for_a_year(client):
    token, _ = open_session(client)
    html = client.get("/pay", query_string={"paymenttoken": token}).get_data(as_text=True)
    urls = asset_urls(html)
    assert {url.rsplit("/", 1)[1] for url in urls} >= {"pay.css", "pay.js", "favicon.svg", "card-visa.svg"}
    for url in urls:
        response = client.get(url, headers=GZIP)
        assert response.status_code == 200
        assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"
        assert response.headers["Vary"] == "Accept-Encoding"


def test_text_assets_are_served_gzipped_to_browsers_that_accept_it(client):
    css = ASSETS["pay.css"]
    url = f"/assets/{css.digest}/pay.css"
    zipped = client.get(url, headers=GZIP)
    assert zipped.headers["Content-Encoding"] == "gzip" and zipped.content_type.startswith("text/css")
    assert len(zipped.data) < len(css.body) / 2
    plain = client.get(url)
    assert "Content-Encoding" not in plain.headers and plain.data == css.body


def test_a_stale_or_unknown_asset_url_is_not_found(client):
    assert client.get("/assets/0000000000000000/pay.css").status_code == 404
    assert client.get("/assets/%s/nope.js" % ASSETS["pay.js"].digest).status_code == 404


def test_unchanged_asset_is_answered_not_modified(client):
    url = f"/assets/{ASSETS['pay.js'].digest}/pay.js"
    etag = client.get(url, headers=GZIP).headers["ETag"]
    assert client.get(url, headers={**GZIP, "If-None-Match": etag}).status_code == 304


def test_favicon_is_served(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 200 and response.content_type.startswith("image/svg+xml")
    assert b"<svg" in response.data


def test_shopper_pages_are_gzipped(client):
    token, _ = open_session(client)
    response = client.get("/pay", query_string={"paymenttoken": token}, headers=GZIP)
    assert response.headers["Content-Encoding"] == "gzip" and "Accept-Encoding" in response.headers["Vary"]
    assert response.headers["Cache-Control"] == "no-store"


def transferred(client, page) -> int:  # type: ignore[no-untyped-def]
    """Bytes over the wire for a page fetched gzipped, and for every asset it references."""
    assert page.headers["Content-Encoding"] == "gzip"
    html = gzip.decompress(page.data).decode()
    return len(page.data) + sum(len(client.get(url, headers=GZIP).data) for url in asset_urls(html))


def test_payment_page_with_all_assets_stays_under_50_kb(client):
    token, _ = open_session(client)
    weight = transferred(client, client.get("/pay", query_string={"paymenttoken": token}, headers=GZIP))
    print(f"payment page with assets: {weight} bytes transferred")
    assert weight <= PAGE_BUDGET


def test_declined_page_with_all_assets_stays_under_50_kb(client, store):
    token, csrf = open_session(client)
    page = client.post("/pay/submit", data=card_form(token, csrf, number=CARDS["decline"]), headers=GZIP)
    assert page.status_code == 402 and transferred(client, page) <= PAGE_BUDGET
