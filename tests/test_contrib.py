"""contrib/: the systemd unit, the reverse proxy example and the Grafana dashboard stay true to
the bridge: the command it runs, the routes it registers, the metrics it exports."""

from __future__ import annotations

import configparser
import json
import re
import shlex
from pathlib import Path

from aiohttp import web

from appservice.app import add_routes
from appservice.metrics import BridgeMetrics
from appservice.openapi import openapi_document

CONTRIB = Path(__file__).resolve().parents[1] / "contrib"
_LOCATION = re.compile(r"location\s+(?:(=|\^~)\s+)?(\S+)\s*\{([^}]*)\}")


def unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string((CONTRIB / "visio-bridge.service").read_text())
    return parser


def test_the_unit_runs_the_bridge_with_its_config() -> None:
    service = unit()["Service"]
    command = shlex.split(service["ExecStart"])
    assert Path(command[0]).name == "visio-bridge"
    assert command[1:3] == ["run", "-c"]
    assert command[3].endswith(".yaml")
    assert shlex.split(service["ExecStartPre"])[1:3] == ["check-config", "-c"]
    assert unit()["Install"]["WantedBy"] == "multi-user.target"


def test_the_unit_is_hardened() -> None:
    service = unit()["Service"]
    assert service.get("User") or service.get("DynamicUser") == "yes"
    for key, value in {
        "ProtectSystem": "strict",
        "NoNewPrivileges": "yes",
        "PrivateTmp": "yes",
        "ProtectHome": "yes",
        "UMask": "0077",
    }.items():
        assert service[key] == value, key
    assert set(service["RestrictAddressFamilies"].split()) == {"AF_INET", "AF_INET6", "AF_UNIX"}
    assert service["CapabilityBoundingSet"] == ""
    # The data directory is writable: the SQLite database and recordings live there.
    writable = service["ReadWritePaths"].split()
    assert "/var/lib/visio-bridge" in writable
    assert service["WorkingDirectory"] in writable


def _proxied() -> list[tuple[str, str]]:
    """(modifier, path) of each nginx location that proxies to the bridge."""
    text = (CONTRIB / "nginx.conf").read_text()
    return [
        (modifier, path) for modifier, path, body in _LOCATION.findall(text) if "proxy_pass" in body
    ]


def _exposed(path: str) -> bool:
    return any(
        path == prefix if modifier == "=" else path.startswith(prefix)
        for modifier, prefix in _proxied()
    )


def _routes() -> dict[str, str]:
    """Each registered path, with a sample for its variables, and its audience."""
    app = web.Application()
    add_routes(app)
    audience = {
        path: item["x-visio-audience"] for path, item in openapi_document()["paths"].items()
    }
    routes = {}
    for resource in app.router.resources():
        sample = re.sub(r"\{[^}]+\}", "sample-1", resource.canonical)
        routes[sample] = audience[resource.canonical]
    routes["/metrics"] = "operator"
    return routes


def test_the_proxy_exposes_the_public_routes_and_nothing_else() -> None:
    routes = _routes()
    public = sorted(path for path, who in routes.items() if who == "public")
    private = sorted(path for path, who in routes.items() if who != "public")
    assert "/m/sample-1" in public and "/api/token" in public
    assert "/_matrix/app/v1/transactions/sample-1" in private and "/metrics" in private
    assert [path for path in public if not _exposed(path)] == []
    assert [path for path in private if _exposed(path)] == []
    # Each proxied location serves some public route: no leftover opening.
    for modifier, prefix in _proxied():
        assert any(
            path == prefix if modifier == "=" else path.startswith(prefix) for path in public
        ), prefix


def test_the_proxy_forwards_the_client_address() -> None:
    text = (CONTRIB / "nginx.conf").read_text()
    assert re.search(r"proxy_set_header\s+X-Forwarded-For\s+\$proxy_add_x_forwarded_for;", text)
    assert "trusted_proxies" in text


def test_the_dashboard_shows_every_metric_and_only_real_ones() -> None:
    dashboard = json.loads((CONTRIB / "grafana-dashboard.json").read_text())
    exprs = " ".join(target["expr"] for panel in dashboard["panels"] for target in panel["targets"])
    used = set(re.findall(r"visio_bridge_[a-z_]+", exprs))
    exported = set()
    for family in BridgeMetrics().registry.collect():
        exported.add(family.name)
        if family.type == "counter":
            exported.add(family.name + "_total")
        if family.type == "histogram":
            exported.update(family.name + suffix for suffix in ("_bucket", "_count", "_sum"))
    assert sorted(used - exported) == []
    families = {family.name for family in BridgeMetrics().registry.collect()}
    assert sorted(f for f in families if not any(u.startswith(f) for u in used)) == []
