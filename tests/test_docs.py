"""What the documentation promises an operator, checked against what the code does (where a test can)."""
from __future__ import annotations

import re
import shlex
from pathlib import Path

from werkzeug.middleware.proxy_fix import ProxyFix

from gateway import MAX_BODY_BYTES, create_app
from gateway.config import Settings, load_settings
from gateway.payments.worklist import AttentionKind

from .live import ROOT

DOCS = sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md"]
DEPLOY = ROOT / "deploy"


def _paragraphs(path: Path) -> list[str]:
    """Blank-line separated blocks; a table's rows each count as one."""
    blocks = re.split(r"\n\s*\n", path.read_text())
    return [row for block in blocks for row in (block.splitlines() if block.lstrip().startswith("|") else [block])]


def _section(path: Path, heading: str) -> str:
    """The text under `heading` up to the next heading of the same or a higher level."""
    text = path.read_text()
    start = text.index(heading)
    level = heading.split(" ", 1)[0]
    following = re.search(rf"^#{{1,{len(level)}}} ", text[start + len(heading):], re.M)
    return text[start:start + len(heading) + following.start()] if following else text[start:]


def _mentions(needle: str) -> list[tuple[str, str]]:
    return [(path.name, block) for path in DOCS for block in _paragraphs(path) if needle in block]


# Health probes

def test_healthz_is_documented_as_liveness_and_answers_ok_without_a_database():
    claims = [(name, block) for name, block in _mentions("/healthz")
              if "/readyz" not in block and re.search(r"503|database (answers|is up)|checks the database", block)]
    assert claims == [], "a doc says /healthz checks the database; it only says the process answers (/readyz checks)"
    app = create_app(load_settings({}, database_url="postgresql://nobody@127.0.0.1:9/none"))
    assert app.test_client().get("/healthz").status_code == 200
    assert app.test_client().get("/readyz").status_code == 503


# Metrics

def _documented_metrics() -> dict[str, str]:
    """Each metric row of docs/operations.md's table: name -> its labels cell."""
    rows = re.findall(r"^\| `(gateway_\w+)` \| \w+ \| ([^|]*) \|", (ROOT / "docs" / "operations.md").read_text(), re.M)
    return dict(rows)


def _emitted_metrics(client) -> set[str]:  # type: ignore[no-untyped-def]
    names = re.findall(r"^# TYPE (gateway_\w+) ", client.get("/metrics").get_data(as_text=True), re.M)
    return {name for name in names if not name.endswith("_created")}  # prometheus_client's own companions


def test_every_metric_in_the_operations_doc_is_emitted_and_every_emitted_one_is_documented(client):
    assert set(_documented_metrics()) == _emitted_metrics(client)


def test_attention_kinds_in_the_operations_doc_are_the_ones_the_metric_counts(client):
    labels = _documented_metrics()["gateway_needs_attention"]
    documented = {kind.strip() for kind in labels.split("=", 1)[1].split(",")}
    scraped = set(re.findall(r'^gateway_needs_attention\{kind="(\w+)"\}', client.get("/metrics").get_data(as_text=True),
                             re.M))
    assert documented == scraped == {kind.value for kind in AttentionKind}


# The README's walk-through

def test_readme_walkthrough_settles_the_sandbox_before_a_partial_refund():
    walkthrough = _section(ROOT / "README.md", "## Set-up on a fresh machine")
    assert "gateway sandbox settle" in walkthrough
    assert re.search(r"partial refund|refund part", walkthrough[walkthrough.index("gateway sandbox settle"):]), (
        "the walk-through must say to settle before a partial refund, which the sandbox refuses until then")


# The proxy

def test_no_doc_recommends_proxyfix_which_gateway_trusted_proxies_installs(settings: Settings):
    advice = [(name, block) for name, block in _mentions("ProxyFix") if "GATEWAY_TRUSTED_PROXIES" not in block]
    assert advice == [], "wrapping the app in ProxyFix again would trust one proxy too many"
    app = create_app(Settings(**{**settings.__dict__, "trusted_proxies": 1}))
    try:
        assert isinstance(app.wsgi_app, ProxyFix)
    finally:
        app.extensions["gateway"].db.dispose()


# deploy/: the systemd units and the nginx site

def _unit(name: str) -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    for line in (DEPLOY / "systemd" / name).read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            values.setdefault(key, []).append(value)
    return values


def test_systemd_units_run_the_procfiles_three_commands():
    procfile = dict(line.split(": ", 1) for line in (ROOT / "Procfile").read_text().splitlines() if ": " in line)
    for process, unit in (("release", "gateway-release.service"), ("web", "gateway-web@.service"),
                          ("worker", "gateway-worker.service")):
        command = shlex.split(_unit(unit)["ExecStart"][0])
        assert [Path(command[0]).name, *command[1:]] == shlex.split(procfile[process]), unit
    for unit in ("gateway-web@.service", "gateway-worker.service"):
        assert "gateway-release.service" in _unit(unit)["After"][0], f"{unit} must start after the release"


def test_nginx_site_is_the_one_buffering_proxy_the_web_unit_trusts():
    site = (DEPLOY / "nginx" / "gateway.conf").read_text()
    assert "GATEWAY_TRUSTED_PROXIES=1" in _unit("gateway-web@.service")["Environment"]
    assert re.search(r"proxy_set_header X-Forwarded-For \$remote_addr;", site)
    assert re.search(r"proxy_request_buffering on;", site)
    size = re.search(r"client_max_body_size (\d+)m;", site)
    assert size and int(size.group(1)) * 1024 * 1024 == MAX_BODY_BYTES
    read_timeout = re.search(r"proxy_read_timeout (\d+)s;", site)
    assert read_timeout and int(read_timeout.group(1)) > Settings().request_budget_seconds
    idle = re.search(r"keepalive_timeout (\d+)s;", site)
    assert idle and int(idle.group(1)) < 75, "nginx must close idle upstream connections before gunicorn does"
    ports = set(re.findall(r"server 127\.0\.0\.1:(\d+)", site))
    assert len(ports) >= 2, "two web instances, so one restarts while the other serves"
