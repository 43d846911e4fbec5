"""The `gateway` command: run the server, migrate the database, operate the sandbox.

Only `serve` and `notifications work` are servers: they build the web app or the worker and log the start-up
line. Every other command builds the services it needs from the settings, without the web app, and imports the
modules of what it does inside its own body, so an operator's one-off command starts in a fraction of a second.
"""
from __future__ import annotations

import getpass
import secrets
import threading
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Callable, Iterator, TypeVar

import click

from .config import DEV_PRIVATE_KEY, ConfigError, Settings, exit_refused, load_settings
from .payments.thresholds import DEFAULTS as RISK_DEFAULTS
from .payments.thresholds import THRESHOLD_NAMES

if TYPE_CHECKING:
    from flask import Flask

    from .models import ConsoleAccount, Payment
    from .services import Services

T = TypeVar("T")
DISTRIBUTION = "threedcart-gateway"


def _settings() -> Settings:
    """The settings from the environment, or one line naming the setting to fix (exit status 2)."""
    try:
        return load_settings()
    except ConfigError as exc:
        exit_refused(exc)


def _services() -> Services:
    """This command's services, built once per command from the settings; the database closes with the command."""
    context = click.get_current_context().find_root()
    if context.obj is not None:  # the caller's own app, handed in as Flask's CLI does (flask.cli.ScriptInfo)
        handed: Services = context.obj.load_app().extensions["gateway"]
        return handed
    if "services" not in context.meta:
        from .observability import logs
        from .services import Services

        settings = _settings()
        logs.configure(json_lines=settings.log_json)
        try:
            services = Services.build(settings)
        except ConfigError as exc:
            exit_refused(exc)
        context.meta["services"] = services
        context.call_on_close(services.db.dispose)
    built: Services = context.meta["services"]
    return built


class _Gateway(click.Group):
    """The command group, telling a database that cannot be used in one line instead of a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except Exception as exc:
            from sqlalchemy.exc import DBAPIError

            if not isinstance(exc, DBAPIError):
                raise
            raise click.ClickException(_database_problem(exc)) from None


def _database_problem(exc: Exception) -> str:
    first = str(getattr(exc, "orig", exc)).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if "no such table" in first or ("relation" in first and "does not exist" in first):
        return f"the database has no gateway tables yet ({first}): run `gateway db upgrade`"
    return f"the database could not be used: {first}"


@click.group(cls=_Gateway)
@click.version_option(package_name=DISTRIBUTION, message="gateway %(version)s")
def main() -> None:
    """A 3dcart (Shift4Shop) payment gateway application.

    Settings come from the process environment alone (no .env file is read), the same under gunicorn and here.
    """


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True)
@click.option("--emulator-port", default=5001, show_default=True,
              help="0 to run without the store emulator (pip install -e ./emulator installs it).")
@click.option("--store-delay", default=0.0, show_default=True, type=click.FloatRange(0, 60),
              help="Seconds the emulated store takes to answer each notification (a slow store).")
def serve(host: str, port: int, emulator_port: int, store_delay: float) -> None:
    """Migrate the database and serve the gateway, with a 3dcart store emulator beside it (development only).

    The emulator is its own distribution, outside the production wheel: without it the gateway is served alone,
    unless --emulator-port was given, which then fails before anything starts.
    """
    from sqlalchemy.engine import make_url
    from werkzeug.serving import make_server, run_simple

    from .migrate import upgrade

    settings = _settings()
    if settings.is_production:
        exit_refused(ConfigError(f"`gateway serve` is the development server, refused in {settings.environment};"
                                 " production runs gunicorn with gateway.gunicorn_conf (see the Procfile)"))
    app = _web_app(settings)
    base = settings.public_url or f"http://{host}:{port}"
    store: Flask | None = None
    if emulator_port:
        try:
            from store_emulator import create_emulator_app  # development only: production never imports it
        except ModuleNotFoundError as missing:
            if missing.name != "store_emulator":
                raise  # installed but broken: its own error says more than ours would
            asked = click.get_current_context().get_parameter_source("emulator_port")
            if asked is not click.core.ParameterSource.DEFAULT:  # typed (or set in the environment) on purpose
                raise click.ClickException("--emulator-port needs the store emulator, which is not installed:"
                                           " pip install -e ./emulator (or --emulator-port 0)") from None
        else:
            store = create_emulator_app(base, settings.private_key, answer_delay=store_delay)
    upgrade(settings.database_url)
    click.echo(f"Gateway Checkout URL:   {base}/checkout")
    click.echo(f"Gateway Post-Order URL: {base}/post-order")
    click.echo(f"Private Key:            {_private_key_source(settings)}")
    click.echo(f"Database:               {make_url(settings.database_url).render_as_string(hide_password=True)}")
    click.echo(f"Processor:              {settings.processor}")
    click.echo("Delivery worker:        NOT running: the first notification is sent while the shopper waits;"
               " retries and crash recovery need `gateway notifications work` in another terminal")
    if store is not None:
        server = make_server(host, emulator_port, store, threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        click.echo(f"Store emulator:         open http://{host}:{emulator_port}/ to shop, pay and refund")
    elif emulator_port:
        click.echo("Store emulator:         NOT installed, serving the gateway alone: pip install -e ./emulator")
    run_simple(host, port, app, threaded=True)


def _web_app(settings: Settings) -> Flask:
    """The whole web app, for the one command that serves it (it logs the start-up line)."""
    from . import create_app

    try:
        return create_app(settings)
    except ConfigError as exc:
        exit_refused(exc)


def _private_key_source(settings: Settings) -> str:
    """Where the Private Key comes from, never the key: a terminal (and its scrollback) is no place for a secret."""
    if settings.private_key == DEV_PRIVATE_KEY:
        return "the public development key (set GATEWAY_PRIVATE_KEY to the one the developer portal shows)"
    return "from GATEWAY_PRIVATE_KEY (not shown)"


@main.command()
def openapi() -> None:
    """Print the OpenAPI document (docs/openapi.json is this output)."""
    import json

    from .web.openapi import build_spec

    click.echo(json.dumps(build_spec(), indent=2, sort_keys=True))


@main.group("keys")
def keys_group() -> None:
    """The gateway's secrets: fresh values, and re-sealing what is stored after GATEWAY_ENCRYPTION_KEY rotates."""


@keys_group.command("new")
def keys_new() -> None:
    """Print fresh values for every secret the gateway generates itself, as environment assignments."""
    from cryptography.fernet import Fernet

    click.echo(f"GATEWAY_SECRET_KEY={secrets.token_urlsafe(32)}")
    click.echo(f"GATEWAY_ENCRYPTION_KEY={Fernet.generate_key().decode()}")
    click.echo(f"GATEWAY_METRICS_TOKEN={secrets.token_urlsafe(32)}")
    click.echo("# GATEWAY_PRIVATE_KEY is issued by the 3dcart developer portal: regenerate it there.")


@keys_group.command("reseal")
def keys_reseal() -> None:
    """Seal every stored secret with the first GATEWAY_ENCRYPTION_KEY, so older keys can be removed.

    Safe to re-run and to run while the gateway serves: what the first key already seals is left alone,
    and a row changed meanwhile (credentials erased when a payment ends) is never written back.
    """
    from .models import ConsoleAccount, Payment

    services = _services()
    unreadable: list[str] = []
    resealed_columns = ((Payment, Payment.credentials_sealed, "merchant credentials"),
                        (ConsoleAccount, ConsoleAccount.totp_sealed, "console TOTP secrets"))
    for model, column, what in resealed_columns:
        resealed, left_alone, failed = _reseal(services, model, column)
        click.echo(f"{what}: {resealed} re-sealed, {left_alone} left alone (already under the first key, or erased"
                   f" meanwhile), {len(failed)} unreadable")
        unreadable += [f"{model.__tablename__} {row_id}" for row_id in failed]
    if unreadable:
        raise click.ClickException("no configured GATEWAY_ENCRYPTION_KEY opens " + ", ".join(unreadable)
                                   + ": put back the key they were sealed with, then run this again")


def _reseal(services: Services, model: type[Payment] | type[ConsoleAccount], column: Any) -> tuple[int, int, list[int]]:
    """Re-seal one column row by row, each write conditional on the value read: (re-sealed, left alone, unreadable ids)."""
    from sqlalchemy import select, update

    from .vault import VaultError

    with services.db.transaction() as session:
        rows = session.execute(select(model.id, column).where(column.is_not(None)).order_by(model.id)).all()
    resealed, failed = 0, []
    for row_id, sealed in rows:
        try:
            fresh = services.vault.reseal(sealed)
        except VaultError:
            failed.append(row_id)
            continue
        if fresh is None:
            continue
        with services.db.transaction() as session:
            statement = update(model).where(model.id == row_id, column == sealed).values({column.key: fresh})
            resealed += session.connection().execute(statement).rowcount
    return resealed, len(rows) - resealed - len(failed), failed


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply every pending Alembic migration."""
    from .migrate import upgrade

    upgrade(_settings().database_url)
    click.echo("database is up to date")


@db.command("revision")
@click.argument("message")
def db_revision(message: str) -> None:
    """Write a new migration from the difference between the models and the database (developers)."""
    from .migrate import revision

    revision(_settings().database_url, message)


@main.group()
def sandbox() -> None:
    """The built-in sandbox processor."""


@sandbox.command("settle")
def sandbox_settle() -> None:
    """Settle every sandbox charge now, so it can only be refunded, no longer voided."""
    processor = _services().processor
    if processor.name != "sandbox":
        raise click.ClickException("the configured processor is not the sandbox")
    count = processor.settle()  # type: ignore[union-attr]  # the sandbox (checked above) has settle()
    click.echo(f"settled {count} charge(s)")


@main.group()
def notifications() -> None:
    """The outbox of CompleteOrderRequests to stores."""


@notifications.command("work")
@click.option("--once", is_flag=True, help="Run one round and exit (for cron or tests).")
@click.option("--interval", default=2.0, show_default=True, help="Seconds to sleep when nothing is due.")
@click.option("--batch", default=20, show_default=True, help="Notifications claimed per round.")
def notifications_work(once: bool, interval: float, batch: int) -> None:
    """Deliver due notifications with backoff; safe to run on several hosts at once."""
    from . import announce
    from .jobs.rounds import run_forever, run_once
    from .payments import worklist

    services = _services()
    if once:
        result = run_once(services, batch)
        click.echo(f"delivered {result.delivered} of {result.attempted} due notification(s); recovered {result.recovered}; "
                   f"{worklist.attention_count(services)} item(s) need attention")
        return
    try:
        services.build_parts()
    except ConfigError as exc:
        exit_refused(exc)
    announce(services.settings)  # a server: it says which mode runs, as the web app does
    run_forever(services, interval, batch)



@notifications.command("list")
@click.option("--state", type=click.Choice(["pending", "delivered", "dead"]), default="dead", show_default=True)
def notifications_list(state: str) -> None:
    """Show notifications in one state, with their last error."""
    from .notifications import outbox

    for row in outbox.in_state(_services().db, state):
        click.echo(f"{row.id}\torder {row.payload.get('orderid')}\tattempts {row.attempts}\t{row.url}\t{row.last_error}")


def _operator() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "operator"


ACTOR = click.option("--actor", default=_operator, show_default="your login", help="Who acts (kept with the record).")


@notifications.command("requeue")
@click.argument("notification_id", type=int)
@click.option("--note", default="requeued by hand", show_default=True)
@ACTOR
def notifications_requeue(notification_id: int, note: str, actor: str) -> None:
    """Send a dead notification again from the first attempt."""
    from .payments import operations

    with _refusals():
        operations.requeue_notification(_services(), notification_id, actor=actor, note=note)
    click.echo(f"notification {notification_id} is pending again")


@main.group("ledger")
def ledger_group() -> None:
    """Voids and refunds whose outcome is unknown."""


@ledger_group.command("unresolved")
def ledger_unresolved() -> None:
    """List voids and refunds still pending or unknown (each holds its amount back)."""
    from .payments import ledger

    with _services().db.transaction() as session:
        for entry in ledger.unresolved(session):
            click.echo(f"{entry.id}\t{entry.kind}\t{entry.amount}\t{entry.outcome}\tcharge {entry.charge_id}"
                       f"\t{entry.created_at:%Y-%m-%d %H:%M}\t{entry.message}")


@ledger_group.command("resolve")
@click.argument("entry_id", type=int)
@click.option("--happened/--did-not-happen", required=True, help="What the processor's own records show.")
@click.option("--note", required=True, help="What was checked, and where.")
@ACTOR
def ledger_resolve(entry_id: int, happened: bool, note: str, actor: str) -> None:
    """Settle an unresolved void or refund after checking it at the processor (never one still in flight)."""
    from .payments import operations

    with _refusals():
        entry = operations.resolve_ledger_entry(_services(), entry_id, happened=happened, actor=actor, note=note)
    click.echo(f"ledger entry {entry_id} is now {entry.outcome}")


@ledger_group.command("acknowledge")
@click.argument("entry_id", type=int)
@click.option("--note", required=True, help="How the books were corrected.")
@ACTOR
def ledger_acknowledge(entry_id: int, note: str, actor: str) -> None:
    """Clear a ledger entry's attention after correcting a late, contradicting processor answer."""
    from .payments import operations

    with _refusals():
        operations.acknowledge_ledger_conflict(_services(), entry_id, actor=actor, note=note)
    click.echo(f"ledger entry {entry_id} acknowledged")


@contextmanager
def _refusals() -> Iterator[None]:
    from .payments import operations

    try:
        yield
    except operations.OperationRefused as exc:
        raise click.ClickException(str(exc)) from exc


@main.group("attention")
def attention_group() -> None:
    """What the gateway cannot finish by itself: list it, and act on it."""


@attention_group.command("list")
def attention_list() -> None:
    """Every item that needs an operator, oldest first: kind, id, order, since, reason."""
    from .payments import worklist

    for item in worklist.needs_attention(_services()):
        click.echo(f"{item.kind}\t{item.id}\torder {item.orderid}\t{item.since:%Y-%m-%d %H:%M}\t{item.reason}")


@attention_group.command("count")
def attention_count() -> None:
    """How many items need an operator (for monitoring: 0 is healthy)."""
    from .payments import worklist

    click.echo(str(worklist.attention_count(_services())))


@attention_group.command("resolve-sale")
@click.argument("payment_id", type=int)
@click.option("--charged", "processor_transaction_id", help="The processor's transaction id: the charge went through.")
@click.option("--not-charged", is_flag=True, help="The processor has no such charge: the shopper may pay again.")
@click.option("--note", required=True, help="What was checked, and where.")
@ACTOR
def attention_resolve_sale(payment_id: int, processor_transaction_id: str | None, not_charged: bool, note: str, actor: str) -> None:
    """Settle a charge attempt of unknown outcome from the processor's own records."""
    from .payments import operations

    if bool(processor_transaction_id) == not_charged:
        raise click.ClickException("give exactly one of --charged TRANSACTION_ID or --not-charged")
    with _refusals():
        state = operations.resolve_sale(_services(), payment_id, charged=not not_charged,
                                        processor_transaction_id=processor_transaction_id or "", actor=actor, note=note)
    click.echo(f"payment {payment_id} is now {state}")


@attention_group.command("reverse")
@click.argument("payment_id", type=int)
@click.option("--reason", required=True)
@ACTOR
def attention_reverse(payment_id: int, reason: str, actor: str) -> None:
    """Give back a charge the store never confirmed."""
    from .payments import operations

    with _refusals():
        operations.reverse_charge(_services(), payment_id, actor=actor, reason=reason)
    click.echo(f"payment {payment_id}: charge reversed")


@attention_group.command("returned-by-hand")
@click.argument("payment_id", type=int)
@click.option("--note", required=True, help="Where and how the money was returned.")
@ACTOR
def attention_returned(payment_id: int, note: str, actor: str) -> None:
    """Record that what was left of a rejected order's charge was returned at the processor itself."""
    from .payments import operations

    with _refusals():
        operations.record_returned_by_hand(_services(), payment_id, actor=actor, note=note)
    click.echo(f"payment {payment_id}: recorded as returned")


@attention_group.command("retry")
@click.argument("payment_id", type=int)
@click.option("--note", default="retry requested", show_default=True)
@ACTOR
def attention_retry(payment_id: int, note: str, actor: str) -> None:
    """Let the worker try a flagged payment again now."""
    from .payments import operations

    with _refusals():
        operations.retry(_services(), payment_id, actor=actor, note=note)
    click.echo(f"payment {payment_id} will be tried again")


@main.group("risk")
def risk_group() -> None:
    """The card-testing defence: stores under attack, and each store's thresholds."""


@risk_group.command("status")
def risk_status() -> None:
    """Every store with card attempts in the last 10 minutes, and whether it is under attack."""
    from .payments import risk

    for status in risk.store_status(_services()):
        click.echo(f"{status.store_key}\t{'UNDER ATTACK' if status.under_attack else 'normal'}\t{status.declines} of "
                   f"{status.judged} declined (10 min)\t{status.attempts_last_minute} attempts in the last minute")


def _threshold_options(command: Callable[..., None]) -> Callable[..., None]:
    for name in reversed(THRESHOLD_NAMES):
        command = click.option(f"--{name.replace('_', '-')}", name, type=int,
                               help=f"default {getattr(RISK_DEFAULTS, name)}")(command)
    return command


@risk_group.command("thresholds")
@click.argument("store_key")
@_threshold_options
@click.option("--note", default="set from the command line", show_default=True, help="Why (kept in the audit log).")
@ACTOR
def risk_thresholds(store_key: str, note: str, actor: str, **values: int | None) -> None:
    """Show a store's thresholds, or set those given (audited); STORE_KEY is its notification host."""
    from .console import actions
    from .payments import risk

    given = {name: str(value) for name, value in values.items() if value is not None}
    if given:
        try:
            click.echo(actions.save_risk_thresholds(_services(), actor, store_key.lower(), given, note).message)
        except actions.ActionRefused as exc:
            raise click.ClickException(str(exc)) from exc
    chosen = risk.thresholds(_services(), store_key.lower())
    for name in THRESHOLD_NAMES:
        click.echo(f"{name.replace('_', '-')}\t{getattr(chosen, name)}")


@main.group("stores")
def stores_group() -> None:
    """How each store is shown to its shoppers (name, logo, support contact)."""


@stores_group.command("list")
def stores_list() -> None:
    """Show every store that has a saved identity."""
    from .payments import stores

    for store in stores.all_identities(_services()):
        click.echo(f"{store.store_key}\t{store.display_name}\t{store.support_email}\t{store.support_url}")


@stores_group.command("set")
@click.argument("store_key")
@click.option("--name", "display_name", help="Name shown to shoppers.")
@click.option("--logo", "logo_url", help="https:// address of the store's logo.")
@click.option("--support-email")
@click.option("--support-phone")
@click.option("--support-url", help="https:// address of the store's help page.")
def stores_set(store_key: str, **values: str | None) -> None:
    """Save a store's identity; STORE_KEY is the host of its notification URL."""
    from .payments import stores

    given = {name: value for name, value in values.items() if value is not None}
    try:
        store = stores.save_identity(_services(), store_key.lower(), **given)
    except stores.ProfileError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{store.store_key}: {store.display_name}")


@main.group("accounts")
def accounts_group() -> None:
    """Operator console accounts (roles: viewer, operator)."""


def _cli_actor() -> str:
    return "cli:" + getpass.getuser()


def _account_command(action: Callable[[], T]) -> T:
    """Run an account change and turn a refusal into a clean CLI error."""
    from .console import accounts

    try:
        return action()
    except accounts.AccountError as exc:
        raise click.ClickException(str(exc)) from exc


PASSWORD = click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True,
                        help="At least 12 characters; prompted for (hidden) when not given.")


@accounts_group.command("create")
@click.argument("username")
@click.option("--role", type=click.Choice(["viewer", "operator"]), required=True)
@PASSWORD
def accounts_create(username: str, role: str, password: str) -> None:
    """Create a console account."""
    from .console import accounts

    account = _account_command(lambda: accounts.create(_services(), _cli_actor(), username, password, role))
    click.echo(f"created {account.username} ({account.role})")


@accounts_group.command("disable")
@click.argument("username")
@click.option("--reason", required=True, help="Why (kept in the audit log).")
def accounts_disable(username: str, reason: str) -> None:
    """Disable an account and end its sessions."""
    from .console import accounts

    account = _account_command(lambda: accounts.set_active(_services(), _cli_actor(), username, False, reason))
    click.echo(f"disabled {account.username}")


@accounts_group.command("enable")
@click.argument("username")
@click.option("--reason", required=True, help="Why (kept in the audit log).")
def accounts_enable(username: str, reason: str) -> None:
    """Enable a disabled account again."""
    from .console import accounts

    account = _account_command(lambda: accounts.set_active(_services(), _cli_actor(), username, True, reason))
    click.echo(f"enabled {account.username}")


@accounts_group.command("list")
def accounts_list() -> None:
    """Show every account, its role and whether it is active and uses TOTP."""
    from .console import accounts

    for account in accounts.all_accounts(_services()):
        state = "active" if account.active else "disabled"
        click.echo(f"{account.username}\t{account.role}\t{state}\t{'totp' if account.totp else 'password only'}")


@accounts_group.command("set-password")
@click.argument("username")
@PASSWORD
def accounts_set_password(username: str, password: str) -> None:
    """Replace an account's password and end its sessions."""
    from .console import accounts

    account = _account_command(lambda: accounts.set_password(_services(), _cli_actor(), username, password))
    click.echo(f"password of {account.username} changed")


@accounts_group.command("enable-totp")
@click.argument("username")
def accounts_enable_totp(username: str) -> None:
    """Require a TOTP code at sign-in; prints the secret's URI once, for the authenticator app."""
    from .console import accounts

    uri = _account_command(lambda: accounts.enable_totp(_services(), _cli_actor(), username))
    click.echo(f"add this to the authenticator app (shown once): {uri}")


@main.group("retention")
def retention_group() -> None:
    """Deleting history past its period (docs/operations.md); the delivery worker does it every round."""


@retention_group.command("run")
@click.option("--dry-run", is_flag=True, help="Count what is past its period now; delete nothing.")
def retention_run(dry_run: bool) -> None:
    """Run one bounded round of retention now, or count what is due."""
    from .payments import retention

    services = _services()
    counts = retention.count_expired_history(services) if dry_run else retention.forget_expired_history(services)
    verb = "past its period" if dry_run else "deleted"
    for kind, rows in counts.items():
        click.echo(f"{kind}\t{rows} {verb}")


if __name__ == "__main__":
    main()
