"""The `gateway` command: run the server, migrate the database, operate the sandbox."""
from __future__ import annotations

import json
import threading

import click
from flask import Flask, current_app
from flask.cli import FlaskGroup
from werkzeug.serving import make_server, run_simple

from . import create_app
from .emulator import create_emulator_app
from .migrate import upgrade
from .openapi import build_spec
from .notifications.worker import run_forever, run_once
from .services import Services


def _services() -> Services:
    return current_app.extensions["gateway"]


def _app() -> Flask:
    return create_app()


@click.group(cls=FlaskGroup, create_app=_app, add_default_commands=False)
def main() -> None:
    """A 3dcart (Shift4Shop) payment gateway application."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True)
@click.option("--emulator-port", default=5001, show_default=True, help="0 to run without the store emulator.")
def serve(host: str, port: int, emulator_port: int) -> None:
    """Migrate the database and serve the gateway, with a 3dcart store emulator beside it (development)."""
    services = _services()
    upgrade(services.settings.database_url)
    base = services.settings.public_url or f"http://{host}:{port}"
    click.echo(f"Gateway Checkout URL:   {base}/checkout")
    click.echo(f"Gateway Post-Order URL: {base}/post-order")
    click.echo(f"Private Key:            {services.settings.private_key}")
    click.echo(f"Database:               {services.settings.database_url}")
    click.echo(f"Processor:              {services.settings.processor}")
    if emulator_port:
        store = create_emulator_app(base, services.settings.private_key)
        server = make_server(host, emulator_port, store, threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        click.echo(f"Store emulator:         open http://{host}:{emulator_port}/ to shop, pay and refund")
    run_simple(host, port, current_app._get_current_object(), threaded=True)  # type: ignore[attr-defined]


@main.command()
def openapi() -> None:
    """Print the OpenAPI document (docs/openapi.json is this output)."""
    click.echo(json.dumps(build_spec(), indent=2, sort_keys=True))


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply every pending Alembic migration."""
    upgrade(_services().settings.database_url)
    click.echo("database is up to date")


@main.group()
def sandbox() -> None:
    """The built-in sandbox processor."""


@sandbox.command("settle")
def sandbox_settle() -> None:
    """Settle every sandbox charge now, so it can only be refunded, no longer voided."""
    processor = _services().processor
    if processor.name != "sandbox":
        raise click.ClickException("the configured processor is not the sandbox")
    count = processor.settle()  # type: ignore[attr-defined]
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
    services = _services()
    if once:
        result = run_once(services, batch)
        click.echo(f"delivered {result.delivered} of {result.attempted} due notification(s); recovered {result.recovered}")
        return
    run_forever(services, interval, batch)


if __name__ == "__main__":
    main()
