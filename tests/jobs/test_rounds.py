"""The delivery worker's round runs retention, bounded, alongside its other steps."""
from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from sqlalchemy import func, select

from gateway.jobs.rounds import run_once
from gateway.models import utcnow
from gateway.models.console import LoginFailure


def test_a_worker_round_deletes_history_past_its_period_within_its_batch_bound(services, monkeypatch):
    monkeypatch.setattr(services, "settings", replace(
        services.settings, retention_console_hours=1, retention_batch_rows=2, retention_batches_per_round=2))
    long_ago, recently = utcnow() - timedelta(hours=2), utcnow()
    with services.db.transaction() as session:
        session.add_all([LoginFailure(username="ops", address="192.0.2.1", occurred_at=long_ago) for _ in range(5)])
        session.add(LoginFailure(username="ops", address="192.0.2.1", occurred_at=recently))

    def left() -> int:
        with services.db.transaction() as session:
            return session.scalar(select(func.count()).select_from(LoginFailure)) or 0

    run_once(services)
    assert left() == 2  # 4 of the 5 old ones: two batches of two
    run_once(services)
    assert left() == 1  # only the recent one
