"""A payment row as the pay path writes it, with plain strings: its columns are the same in every
revision since 0006, so the migration tests and the constraint tests share it."""
from __future__ import annotations

from datetime import timedelta
from typing import Any

from gateway.models import utcnow


def payment_row(orderid: int = 1) -> dict[str, Any]:
    now = utcnow()
    return {
        "token": f"tok{orderid}", "store_key": "example.com", "orderid": orderid, "invoice": f"INV{orderid}",
        "randomkey": f"rk{orderid}", "currency": "USD", "amount_total": 1000, "tax_total": 0, "shipping_total": 0,
        "discount": 0, "email": "", "billing": {}, "shipping": {}, "items": [], "cancel_url": "https://s/c",
        "error_url": "https://s/e", "notification_url": "https://s/n", "return_url": "https://s/r",
        "credentials_fingerprint": "f" * 64, "test_mode": True, "state": "approved", "attempt": 1,
        "decline_count": 0, "last_decline": "", "card_brand": "visa", "card_last4": "1111", "error_code": "",
        "error_message": "", "attention": "", "failures": 0, "expires_at": now + timedelta(hours=1),
        "created_at": now, "updated_at": now,
    }
