"""Console accounts: the CLI, argon2 hashes, throttled sign-in that holds across workers, TOTP."""
from __future__ import annotations

import threading
import time
from dataclasses import replace
from datetime import timedelta

import pyotp
import pytest
from click.testing import CliRunner
from flask.cli import ScriptInfo
from sqlalchemy import func, select, update

from gateway import create_app
from gateway.cli import main
from gateway.console import accounts, views
from gateway.models import AuditRecord, ConsoleAccount, LoginFailure, utcnow
from gateway.web import limits

from ..console_helpers import PASSWORD, make_account, sign_in, signed_in


def run_cli(app, *args: str, input: str | None = None):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(main, list(args), obj=ScriptInfo(create_app=lambda: app), input=input)


def account_row(services, username: str) -> ConsoleAccount:  # type: ignore[no-untyped-def]
    with services.db.transaction() as session:
        return session.scalars(select(ConsoleAccount).where(ConsoleAccount.username == username)).one()


def test_cli_creates_lists_disables_and_reenables_accounts(app, services):
    created = run_cli(app, "accounts", "create", "Olivia", "--role", "operator", input=f"{PASSWORD}\n{PASSWORD}\n")
    assert created.exit_code == 0 and "created olivia (operator)" in created.output
    assert "olivia\toperator\tactive\tpassword only" in run_cli(app, "accounts", "list").output
    client, _ = signed_in(app, "olivia")
    disabled = run_cli(app, "accounts", "disable", "olivia", "--reason", "left the company")
    assert disabled.exit_code == 0
    assert client.get("/console/payments").status_code == 303  # the open session ended at once
    assert sign_in(app.test_client(), "olivia").status_code == 401
    assert "olivia\toperator\tdisabled" in run_cli(app, "accounts", "list").output
    assert run_cli(app, "accounts", "enable", "olivia", "--reason", "came back").exit_code == 0
    assert sign_in(app.test_client(), "olivia").status_code == 303
    with services.db.transaction() as session:
        actions = [(r.actor.startswith("cli:"), r.action, r.reason) for r in session.scalars(
            select(AuditRecord).where(AuditRecord.action.startswith("account.")).order_by(AuditRecord.id))]
    assert actions == [(True, "account.create", ""), (True, "account.disable", "left the company"),
                       (True, "account.enable", "came back")]


@pytest.mark.parametrize("args,message", [
    (["create", "x", "--role", "viewer"], "a username is 2-64 characters"),
    (["create", "bob", "--role", "viewer", "--password", "short"], "at least 12 characters"),
    (["disable", "nobody", "--reason", "r"], "no account 'nobody'"),
])
def test_cli_refusals_are_clear(app, args, message):
    result = run_cli(app, "accounts", *args, input=f"{PASSWORD}\n{PASSWORD}\n")
    assert result.exit_code == 1 and message in result.output


def test_cli_refuses_a_second_account_of_the_same_name(app, services):
    make_account(services, "olivia", "viewer")
    result = run_cli(app, "accounts", "create", "olivia", "--role", "operator", "--password", PASSWORD)
    assert result.exit_code == 1 and "already exists" in result.output


def test_passwords_are_stored_as_argon2id_hashes(services):
    make_account(services, "olivia", "operator")
    stored = account_row(services, "olivia").password_hash
    assert stored.startswith("$argon2id$") and PASSWORD not in stored


def test_set_password_ends_old_sessions(app, services):
    make_account(services, "olivia", "operator")
    client, _ = signed_in(app, "olivia")
    assert run_cli(app, "accounts", "set-password", "olivia", "--password", "a new long passphrase").exit_code == 0
    assert client.get("/console/payments").status_code == 303
    assert sign_in(app.test_client(), "olivia").status_code == 401
    assert sign_in(app.test_client(), "olivia", password="a new long passphrase").status_code == 303


def test_five_failures_lock_the_account_even_with_the_right_password(app, services):
    make_account(services, "olivia", "operator")
    for _ in range(accounts.MAX_ACCOUNT_FAILURES):
        assert sign_in(app.test_client(), "olivia", password="guess guess guess").status_code == 401
    locked = sign_in(app.test_client(), "olivia")
    assert locked.status_code == 401 and "Too many failed sign-ins" in locked.get_data(as_text=True)
    with services.db.transaction() as session:  # the window passes
        session.execute(update(LoginFailure).values(occurred_at=utcnow() - timedelta(minutes=16)))
    assert sign_in(app.test_client(), "olivia").status_code == 303


def test_lockout_holds_across_workers(app, settings):
    """Two app instances (as two gunicorn workers) share the count, because it lives in the database."""
    services = app.extensions["gateway"]
    make_account(services, "olivia", "operator")
    other = create_app(settings)
    try:
        for index in range(accounts.MAX_ACCOUNT_FAILURES):
            worker = app if index % 2 else other
            assert sign_in(worker.test_client(), "olivia", password="guess guess guess").status_code == 401
        assert "Too many failed" in sign_in(other.test_client(), "olivia").get_data(as_text=True)
        assert "Too many failed" in sign_in(app.test_client(), "olivia").get_data(as_text=True)
    finally:
        other.extensions["gateway"].db.dispose()


def test_one_address_guessing_many_accounts_is_locked_out(app, services):
    make_account(services, "olivia", "operator")
    for index in range(accounts.MAX_ADDRESS_FAILURES):
        sign_in(app.test_client(), f"user{index}", password="guess guess guess")
    assert "Too many failed" in sign_in(app.test_client(), "olivia").get_data(as_text=True)


def test_unknown_user_gets_the_same_answer_as_a_wrong_password(app, services):
    make_account(services, "olivia", "operator")
    unknown = sign_in(app.test_client(), "nobody", password="guess guess guess")
    wrong = sign_in(app.test_client(), "olivia", password="guess guess guess")
    assert unknown.status_code == wrong.status_code == 401
    assert "The username, password or code is not correct." in unknown.get_data(as_text=True)
    assert "The username, password or code is not correct." in wrong.get_data(as_text=True)


def test_totp_is_required_once_enabled_and_a_code_works_only_once(app, services):
    make_account(services, "olivia", "operator")
    result = run_cli(app, "accounts", "enable-totp", "olivia")
    assert result.exit_code == 0
    secret = result.output.split("secret=")[1].split("&")[0]
    assert secret not in (account_row(services, "olivia").totp_sealed or "")  # sealed at rest
    assert sign_in(app.test_client(), "olivia").status_code == 401
    assert sign_in(app.test_client(), "olivia", code="000000").status_code == 401
    code = pyotp.TOTP(secret).now()
    assert sign_in(app.test_client(), "olivia", code=code).status_code == 303
    assert sign_in(app.test_client(), "olivia", code=code).status_code == 401  # replayed
    assert "olivia\toperator\tactive\ttotp" in run_cli(app, "accounts", "list").output


# Issue 20, items 2 and 3: a sign-in flood is counted atomically, rate limited and bounded; one code, one sign-in.

def client_from(app, address: str):  # type: ignore[no-untyped-def]
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client


def race_sign_ins(services, count: int, username: str, password: str, code: str = "") -> list[str]:  # type: ignore[no-untyped-def]
    """``count`` sign-ins at once on real threads; each outcome as ok, refused or locked."""
    barrier = threading.Barrier(count)
    outcomes: list[str] = []

    def attempt(index: int) -> None:
        barrier.wait()
        try:
            accounts.authenticate(services, username, password, code, f"10.0.0.{index}")
            outcomes.append("ok")
        except accounts.LoginRefused as exc:
            outcomes.append("locked" if exc.message == accounts.LOCKED else "refused")

    threads = [threading.Thread(target=attempt, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def test_parallel_wrong_passwords_cannot_pass_the_lockout(app, services):
    make_account(services, "olivia", "operator")
    outcomes = race_sign_ins(services, 40, "olivia", "guess guess guess")
    assert set(outcomes) <= {"locked", "refused"} and len(outcomes) == 40
    with services.db.transaction() as session:
        checked = session.scalar(select(func.count()).select_from(AuditRecord).where(AuditRecord.action == "login.failed"))
    assert checked <= accounts.MAX_ACCOUNT_FAILURES
    assert "Too many failed" in sign_in(app.test_client(), "olivia").get_data(as_text=True)  # the right password too


def test_a_sign_in_flood_from_one_address_is_turned_away_with_429(app, services):
    client = app.test_client()
    answers = [sign_in(client, f"user{index}", password="guess guess guess") for index in range(31)]
    assert [a.status_code for a in answers[:30]] == [401] * 30
    assert answers[30].status_code == 429 and "Too many sign-in attempts" in answers[30].get_data(as_text=True)
    other = client_from(app, "192.0.2.7")
    assert sign_in(other, "user0", password="guess guess guess").status_code == 401  # another address is not


def test_a_sign_in_flood_on_one_account_from_many_addresses_is_turned_away_with_429(app, services):
    make_account(services, "olivia", "operator")
    answers = [sign_in(client_from(app, f"192.0.2.{index}"), "Olivia ", password="guess")
               for index in range(11)]
    assert [a.status_code for a in answers[:10]] == [401] * 10
    assert answers[10].status_code == 429 and "Too many sign-in attempts" in answers[10].get_data(as_text=True)


def test_sign_ins_beyond_capacity_are_turned_away_at_once_with_503(app, services):
    make_account(services, "olivia", "operator")
    taken = 0
    while views.SIGN_INS.enter(0):  # every slot busy with other sign-ins
        taken += 1
    try:
        started = time.monotonic()
        busy = sign_in(app.test_client(), "olivia")
        waited = time.monotonic() - started
    finally:
        for _ in range(taken):
            views.SIGN_INS.leave()
    assert busy.status_code == 503 and "Retry-After" in busy.headers and waited < 3
    assert "checking many sign-ins" in busy.get_data(as_text=True)
    with services.db.transaction() as session:  # nothing was counted against the account
        assert session.scalar(select(func.count()).select_from(LoginFailure)) == 0
    assert sign_in(app.test_client(), "olivia").status_code == 303


def test_one_totp_code_signs_in_once_when_sign_ins_race(app, services):
    make_account(services, "olivia", "operator")
    secret = run_cli(app, "accounts", "enable-totp", "olivia").output.split("secret=")[1].split("&")[0]
    # As many racers as the lockout lets through, so each of them reaches the code check.
    outcomes = race_sign_ins(services, accounts.MAX_ACCOUNT_FAILURES, "olivia", PASSWORD, pyotp.TOTP(secret).now())
    assert outcomes.count("ok") == 1, outcomes


def test_sign_in_limits_are_shared_by_every_process_through_redis(settings, monkeypatch):
    redis = pytest.importorskip("redis")
    storage = "redis://127.0.0.1:6379/3"
    try:
        redis.Redis.from_url(storage, socket_connect_timeout=1).flushdb()
    except redis.RedisError:
        pytest.skip("no Redis on 127.0.0.1:6379")
    monkeypatch.setattr(limits, "SIGN_IN_PER_ACCOUNT", "3 per minute")
    workers = [create_app(replace(settings, ratelimit_storage=storage)) for _ in range(2)]
    try:
        name = f"olivia{hash(settings.database_url) % 1000}"  # one per engine and xdist worker
        codes = [sign_in(client_from(workers[n % 2], f"192.0.2.{n}"), name, password="guess").status_code
                 for n in range(4)]
        assert codes == [401, 401, 401, 429]
    finally:
        for worker in workers:
            worker.extensions["gateway"].db.dispose()
