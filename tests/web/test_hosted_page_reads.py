"""A page view only reads: nothing committed per view, the store's identity and the order's amounts
remembered, the page's catalogue looked up once, and the same page as before in every language."""
from __future__ import annotations

import re
from dataclasses import replace
from typing import Any, Iterator

import flask_babel
import pytest
from sqlalchemy import event, select

from gateway.memo import Recent
from gateway.models import PaymentEvent
from gateway.payments import stores
from gateway.web import i18n, payment_page

from ..flow_helpers import open_session, pay
from ..protocol_helpers import CARDS

WRITES = re.compile(r"\s*(INSERT|UPDATE|DELETE|BEGIN IMMEDIATE)", re.IGNORECASE)
STORE = "example-com.3dcartstores.com"


class Recorder:
    """Every statement and commit the gateway's engine sees while it listens."""

    def __init__(self) -> None:
        self.statements: list[str] = []
        self.commits = 0

    def statement(self, _conn: Any, _cursor: Any, sql: str, *_args: Any) -> None:
        self.statements.append(sql)

    def commit(self, _conn: Any) -> None:
        self.commits += 1


@pytest.fixture
def recorded(services) -> Iterator[Recorder]:  # type: ignore[no-untyped-def]
    recorder = Recorder()
    event.listen(services.db.engine, "before_cursor_execute", recorder.statement)
    event.listen(services.db.engine, "commit", recorder.commit)
    yield recorder
    event.remove(services.db.engine, "before_cursor_execute", recorder.statement)
    event.remove(services.db.engine, "commit", recorder.commit)


def view(client, token: str, **headers: str) -> str:  # type: ignore[no-untyped-def]
    response = client.get("/pay", query_string={"paymenttoken": token}, headers=headers)
    assert response.status_code == 200
    return str(response.get_data(as_text=True))


def test_a_page_view_commits_nothing(client, recorded):
    token, _ = open_session(client)  # the first view is recorded on the timeline
    recorded.statements.clear()
    recorded.commits = 0
    view(client, token)
    view(client, token)
    assert recorded.commits == 0
    assert [sql for sql in recorded.statements if WRITES.match(sql)] == []


def test_only_the_first_view_is_on_the_timeline(client, services):
    token, _ = open_session(client)
    view(client, token)
    view(client, token)
    with services.db.transaction() as session:
        kinds = session.scalars(select(PaymentEvent.kind)).all()
    assert kinds == ["page_view"]


def test_the_store_identity_is_not_read_again_for_each_view(client, recorded):
    token, _ = open_session(client)
    recorded.statements.clear()
    for _ in range(3):
        view(client, token)
    assert [sql for sql in recorded.statements if "store_profiles" in sql] == []


def test_a_store_saved_in_the_console_shows_on_the_next_view(client, services):
    token, _ = open_session(client)
    assert "Acme Tools" not in view(client, token)
    stores.save_identity(services, STORE, display_name="Acme Tools")
    assert "Acme Tools" in view(client, token)


def test_a_store_saved_by_another_worker_shows_once_the_memory_expires(client, services, monkeypatch):
    token, _ = open_session(client)
    view(client, token)
    other_worker = type(services).build(services.settings)
    stores.save_identity(other_worker, STORE, display_name="Acme Tools")
    assert "Acme Tools" not in view(client, token)  # this worker still remembers the old identity
    monkeypatch.setattr("gateway.memo.time.monotonic", lambda: 1e12)
    assert "Acme Tools" in view(client, token)
    other_worker.db.dispose()


def test_the_page_looks_its_catalogue_up_once_per_view(client, monkeypatch):
    token, _ = open_session(client, currency="EUR")
    lookups: list[object] = []
    resolve = flask_babel.get_translations

    def counted() -> Any:
        lookups.append(1)
        return resolve()

    monkeypatch.setattr(flask_babel, "get_translations", counted)  # what Flask-Babel's template gettext calls
    monkeypatch.setattr(i18n, "get_translations", counted)  # the page's own lookup (template and form messages)
    html = view(client, token, **{"Accept-Language": "de"})
    assert '<html lang="de">' in html
    assert "Kartennummer" in html  # the German card form, and its script's messages
    assert len(lookups) == 1  # once per view: not once per string, nor again for the form's messages


@pytest.mark.parametrize("lang", sorted(i18n.LANGUAGES))
def test_the_page_reads_the_same_in_every_language(app, client, services, lang, monkeypatch):
    """Against Flask-Babel's own template gettext: the same text, escaping and plural forms."""
    monkeypatch.setattr(services, "settings", replace(services.settings, max_declines=5))  # 4, then 3 left: one form
    stores.save_identity(services, STORE, display_name="Tom & Jerry's <Shop>")
    token, csrf = open_session(client, currency="EUR")
    headers = {"Accept-Language": lang}
    declined = pay(client, token, csrf, number=CARDS["decline"])  # the plural "attempts left" line
    pages = [view(client, token, **headers), declined.get_data(as_text=True)]
    processors = app.template_context_processors[None]
    processors.remove(i18n._page_catalogue)
    monkeypatch.setattr(payment_page, "_BLANK_FIELDS", Recent(size=64, seconds=3600))  # the fields rendered anew too
    try:
        before = [view(client, token, **headers), pay(client, token, csrf, number=CARDS["decline"]).get_data(as_text=True)]
    finally:
        processors.append(i18n._page_catalogue)
    assert f'<html lang="{lang}">' in pages[0]
    assert "Tom &amp; Jerry&#39;s &lt;Shop&gt;" in pages[0]
    assert pages[0] == before[0]
    assert _without_attempts(pages[1]) == _without_attempts(before[1])


def _without_attempts(html: str) -> str:
    """Two declines leave different numbers of attempts; the sentence around the number must match."""
    return re.sub(r"\d+", "N", html)


def test_the_blank_card_fields_are_rendered_once_per_language(client, monkeypatch):
    renders: list[str] = []
    render = payment_page.render_template

    def counted(name: str, **context: Any) -> str:
        renders.append(name)
        return render(name, **context)

    monkeypatch.setattr(payment_page, "_BLANK_FIELDS", Recent(size=64, seconds=3600))
    monkeypatch.setattr(payment_page, "render_template", counted)
    first, _ = open_session(client)
    second, _ = open_session(client)
    english = [view(client, token) for token in (first, second, first)]
    german = view(client, second, **{"Accept-Language": "de"})
    assert renders.count("_card_fields.html") == 2  # English once, German once
    assert english[0].count('id="card_number"') == english[1].count('id="card_number"') == 1
    assert 'name="paymenttoken" value="%s"' % second in english[1]  # the payment's own parts are its own
    assert "Name auf der Karte" in german and "Name on card" not in german


def test_a_refused_card_form_shows_its_errors_and_keeps_the_holder(client):
    token, csrf = open_session(client)
    view(client, token)  # the blank fields are remembered
    answer = pay(client, token, csrf, number="4111", holder="Ada Lovelace")
    html = answer.get_data(as_text=True)
    assert answer.status_code == 422
    assert 'aria-invalid="true"' in html and 'id="card_number-error" hidden' not in html
    assert 'value="Ada Lovelace"' in html
    assert 'value="Ada Lovelace"' not in view(client, token)  # and a later view is blank again
