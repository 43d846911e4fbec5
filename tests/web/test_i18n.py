"""The hosted page speaks the shopper's language and writes amounts the shopper's way."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from babel.messages.pofile import read_po
from babel.support import Translations

from gateway.web.i18n import LANGUAGES, TRANSLATIONS

from ..flow_helpers import open_session, pay
from ..protocol_helpers import CARDS

ROOT = Path(__file__).resolve().parents[2]


def page(client, token, **headers):  # type: ignore[no-untyped-def]
    return client.get("/pay", query_string={"paymenttoken": token}, headers=headers).get_data(as_text=True)


def test_accept_language_german_shows_german_page_and_german_amounts(client):
    token, _ = open_session(client, currency="EUR", amounttotal=123456, items=[], shippingtotal=0, taxtotal=0,
                            discount=0)
    html = page(client, token, **{"Accept-Language": "de-DE,de;q=0.9,en;q=0.5"})
    assert '<html lang="de">' in html
    assert "Mit Karte bezahlen" in html and "Kartennummer" in html
    assert "1.234,56\xa0€" in html and "€1,234.56" not in html


def test_english_stays_the_default_and_formats_the_us_way(client):
    token, _ = open_session(client, currency="EUR", amounttotal=123456, items=[], shippingtotal=0, taxtotal=0,
                            discount=0)
    html = page(client, token)
    assert '<html lang="en">' in html and "Pay by card" in html and "€1,234.56" in html


@pytest.mark.parametrize("accept, lang, words, amount", [
    ("es-ES", "es", "Pagar con tarjeta", "123,12\xa0US$"),
    ("fr-CA,fr;q=0.8", "fr", "Payer par carte", "123,12\xa0$US"),
    ("pt-BR", "pt", "Pagar com cartão", "US$\xa0123,12"),
    ("ja", "ja", "カードで支払う", "$123.12"),
    ("xx-YY, zz", "en", "Pay by card", "$123.12"),
])
def test_each_language_is_chosen_from_accept_language(client, accept, lang, words, amount):
    token, _ = open_session(client)
    html = page(client, token, **{"Accept-Language": accept})
    assert f'<html lang="{lang}">' in html and words in html and amount in html


def test_switcher_offers_every_language_and_the_choice_is_remembered(client):
    token, csrf = open_session(client)
    html = page(client, token, **{"Accept-Language": "de"})
    for code, name in LANGUAGES.items():
        assert f'lang="{code}" hreflang="{code}"' in html and name in html
    assert 'aria-current="true">Deutsch' in html

    chosen = client.get("/pay", query_string={"paymenttoken": token, "lang": "ja"}, headers={"Accept-Language": "de"})
    assert '<html lang="ja">' in chosen.get_data(as_text=True)
    assert "lang=ja" in chosen.headers["Set-Cookie"]
    # The cookie carries the choice through the form post, whatever the browser's language.
    refused = pay(client, token, csrf, number="4242424242424241")
    assert "このカード番号は正しくありません" in refused.get_data(as_text=True)


def test_field_errors_are_translated(client):
    token, csrf = open_session(client)
    response = client.post("/pay/submit", headers={"Accept-Language": "es"}, data={
        "paymenttoken": token, "csrf": csrf, "card_number": "4242424242424241", "expiry": "13/30", "cvc": "1", "holder": ""})
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    for words in ("Este número de tarjeta no es válido", "Introduzca la fecha de caducidad como MM/AA",
                  "Introduzca el código de seguridad de 3 dígitos", "Introduzca el nombre que figura en la tarjeta",
                  "Corrija los campos marcados"):
        assert words in html, words


def test_decline_message_is_translated(client, store):
    token, csrf = open_session(client)
    response = client.post("/pay/submit", headers={"Accept-Language": "fr"}, data={
        "paymenttoken": token, "csrf": csrf, "card_number": CARDS["insufficient"], "expiry": "12/39", "cvc": "123",
        "holder": "Ada"})
    html = response.get_data(as_text=True)
    assert response.status_code == 402
    assert "Votre carte n’a pas de provision suffisante." in html and "Il vous reste 2 tentatives" in html
    assert "insufficient" not in html


def test_unknown_token_page_is_translated(client):
    response = client.get("/pay", query_string={"paymenttoken": "nope"}, headers={"Accept-Language": "pt-BR"})
    html = response.get_data(as_text=True)
    assert response.status_code == 404
    assert "<h1>Página não encontrada</h1>" in html and "Não encontramos este pagamento" in html


def test_catalogues_are_complete_and_compiled(tmp_path):
    """Every marked string is in every language, and the compiled .mo files say the same as the .po files."""
    pot = tmp_path / "messages.pot"
    subprocess.run([sys.executable, "-m", "babel.messages.frontend", "extract", "-F", "babel.cfg", "-k", "N_",
                    "-k", "_", "-k", "gettext", "-k", "ngettext:1,2", "-o", str(pot), "."],
                   cwd=ROOT, check=True, capture_output=True)
    with pot.open("rb") as handle:
        wanted = {m.id if isinstance(m.id, str) else m.id[0] for m in read_po(handle) if m.id}
    assert len(wanted) > 50
    for lang in set(LANGUAGES) - {"en"}:
        with (TRANSLATIONS / lang / "LC_MESSAGES" / "messages.po").open("rb") as handle:
            catalog = read_po(handle)
        translated = {m.id if isinstance(m.id, str) else m.id[0]: m.string for m in catalog if m.id}
        assert wanted <= translated.keys(), (lang, wanted - translated.keys())
        assert all(translated[key] for key in wanted), lang
        compiled = Translations.load(str(TRANSLATIONS), [lang])
        assert all(compiled.gettext(key) == translated[key] for key in wanted if isinstance(translated[key], str)), lang


def test_chosen_language_survives_the_form_post_without_cookies(app, client):
    token, csrf = open_session(client)
    html = client.get("/pay", query_string={"paymenttoken": token, "lang": "fr"}).get_data(as_text=True)
    assert 'action="/pay/submit?lang=fr"' in html and 'action="/pay/cancel?lang=fr"' in html
    cookieless = app.test_client(use_cookies=False)
    refused = cookieless.post("/pay/submit?lang=fr", data={"paymenttoken": token, "csrf": csrf, "card_number": ""})
    assert "Saisissez votre numéro de carte." in refused.get_data(as_text=True)
