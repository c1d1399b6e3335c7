"""Test connection: sign in and make one real stats call, so a missing Ip.Read.All shows up by name."""

from __future__ import annotations

import time

from plugin.auth import TokenProvider
from plugin.config import Connection
from plugin.defender import DefenderClient
from plugin.errors import InputError, ServiceUnavailableError
from plugin.ips import parse_item
from plugin.models import Meter
from plugin.quota import shared_quota
from plugin.session import DefenderSession

DEFAULT_IP = "10.209.67.177"  # the documentation's example IP: any tenant accepts it
MAX_WAIT_SECONDS = 10.0
STATUS_OF_KIND = {"stats": "enriched", "not_found": "not_seen", "invalid": "invalid"}


def run(inputs: dict, connection: Connection) -> dict:
    """Entrypoint: get a token, call the stats route once, and report what worked."""
    item = parse_item(inputs.get("ip", DEFAULT_IP))
    if item.status != "callable":
        raise InputError("inputs.ip: must be a routable IP address")
    # A fresh sign-in, not a cached token: this check is the one place that proves the credential.
    session = DefenderSession(connection, quota=shared_quota(connection), tokens=TokenProvider(connection, persist=False))
    started = time.monotonic()
    session.tokens.token()
    outcome = DefenderClient(session).ip_stats(
        item.ip, look_back_hours=720, lane="analyst", deadline=session.clock() + MAX_WAIT_SECONDS, meter=Meter()
    )
    if outcome.kind not in STATUS_OF_KIND:
        raise ServiceUnavailableError(f"the stats call did not succeed: {outcome.error_code}: {outcome.message}")
    stats_status = "enriched" if outcome.kind == "stats" and outcome.stats.prevalence > 0 else STATUS_OF_KIND[outcome.kind]
    elapsed_ms = int((time.monotonic() - started) * 1000)
    endpoints = connection.endpoints
    return {
        "schema_version": "1.0",
        "action": "test_connection",
        "status": "success",
        "cloud": endpoints.cloud,
        "api_base_url": endpoints.api_base_url,
        "authority_host": endpoints.authority_host,
        "token_acquired": True,
        "stats_call": {"ip": item.ip, "status": stats_status},
        "elapsed_ms": elapsed_ms,
        "quota": session.quota.state("analyst"),
        "markdown": (
            f"signed in to tenant {connection.tenant_id} ({endpoints.cloud}) and read IP statistics "
            f"for {item.ip} from {endpoints.api_base_url} ({stats_status}) in {elapsed_ms} ms"
        ),
    }
