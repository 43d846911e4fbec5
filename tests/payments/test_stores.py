"""Store identities: what shoppers see of the merchant, and what the gateway refuses to show."""
from __future__ import annotations

import pytest

from gateway.payments import stores


def test_unknown_store_is_shown_by_its_host(services) -> None:  # type: ignore[no-untyped-def]
    shown = stores.identity(services, "shop.example.com")
    assert shown.display_name == "shop.example.com" and not shown.configured


def test_saved_identity_is_shown_and_updated(services) -> None:  # type: ignore[no-untyped-def]
    stores.save_identity(services, "shop.example.com", display_name="Acme Tools", support_email="help@acme.test")
    stores.save_identity(services, "shop.example.com", logo_url="https://cdn.acme.test/logo.png")
    shown = stores.identity(services, "shop.example.com")
    assert (shown.display_name, shown.support_email, shown.logo_url, shown.configured) == (
        "Acme Tools", "help@acme.test", "https://cdn.acme.test/logo.png", True)


@pytest.mark.parametrize("field,value", [
    ("logo_url", "http://cdn.acme.test/logo.png"),
    ("logo_url", "javascript:alert(1)"),
    ("support_url", "data:text/html,hi"),
    ("support_email", "not-an-address"),
    ("display_name", "x" * 121),
])
def test_unsafe_profile_values_are_refused(services, field: str, value: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(stores.ProfileError):
        stores.save_identity(services, "shop.example.com", **{field: value})
    assert not stores.identity(services, "shop.example.com").configured


def test_cli_sets_a_store_identity(app) -> None:  # type: ignore[no-untyped-def]
    runner = app.test_cli_runner()
    from gateway.cli import main

    result = runner.invoke(main, ["stores", "set", "Shop.Example.com", "--name", "Acme Tools"])
    assert result.exit_code == 0, result.output
    listed = runner.invoke(main, ["stores", "list"])
    assert "shop.example.com\tAcme Tools" in listed.output
    refused = runner.invoke(main, ["stores", "set", "shop.example.com", "--logo", "http://x.test/a.png"])
    assert refused.exit_code != 0 and "https" in refused.output
