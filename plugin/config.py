"""The connection: validated once at the edge, then carried as typed, secret-safe objects."""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import platformdirs

from plugin import schemas
from plugin.clouds import Endpoints, resolve_endpoints
from plugin.errors import ConfigError
from plugin.redaction import register_secret
from plugin.resources import load_manifest

CONNECTION_SCHEMA = "schemas/connection.schema.json"
ENV_FALLBACKS = {
    "tenant_id": "DEFENDER_TENANT_ID",
    "client_id": "DEFENDER_CLIENT_ID",
    "client_secret": "DEFENDER_CLIENT_SECRET",
}
LANES = ("analyst", "playbook", "scheduled")
DEFAULT_LANE_SHARES = {"analyst": 1.0, "playbook": 0.9, "scheduled": 0.8}


@dataclass(frozen=True)
class Credential:
    """Exactly one of a client secret or a certificate file; secrets never show in repr()."""

    client_secret: str | None = field(default=None, repr=False)
    certificate_path: str | None = None
    certificate_passphrase: str | None = field(default=None, repr=False)

    def fingerprint(self) -> str:
        """A one-way digest that tells two credentials apart without revealing either."""
        material = "\0".join(str(v) for v in (self.client_secret, self.certificate_path, self.certificate_passphrase))
        return hashlib.sha256(material.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Window:
    """One API limit: `calls` per `per_seconds`."""

    calls: int
    per_seconds: float


@dataclass(frozen=True)
class QuotaSettings:
    """How the shared budget is stored and how much of it each lane may use."""

    backend: str = "sqlite"
    redis_url: str | None = None
    share: float = 0.95
    lanes: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_LANE_SHARES))
    limits: tuple[Window, ...] = ()

    def cap(self, window: Window, lane: str) -> int:
        """Calls the lane may make in one window: floor(calls x share x lane share), at least 1."""
        whole = max(1, math.floor(window.calls * self.share))
        return max(1, math.floor(whole * self.lanes[lane]))


@dataclass(frozen=True)
class CacheSettings:
    """The result cache (issue 4 stores it; today it is only carried)."""

    enabled: bool = True
    ttl_seconds: int = 3600


@dataclass(frozen=True)
class Connection:
    """Everything needed to reach one tenant's Defender API as one app registration."""

    tenant_id: str
    client_id: str
    credential: Credential
    endpoints: Endpoints
    ca_bundle: str | None = None
    proxy: str | None = field(default=None, repr=False)  # may carry proxy credentials
    timeout_seconds: float = 30.0
    state_dir: str = ""
    quota: QuotaSettings = field(default_factory=QuotaSettings)
    cache: CacheSettings = field(default_factory=CacheSettings)

    @property
    def budget_key(self) -> str:
        """Microsoft counts calls per app + tenant, in each cloud: so do we."""
        return f"{self.endpoints.cloud}:{self.tenant_id.lower()}:{self.client_id.lower()}"


def load_connection(raw: object, env: Mapping[str, str] | None = None) -> Connection:
    """Validate a connection document (nulls dropped, env fallbacks applied) into a Connection."""
    if not isinstance(raw, dict):
        raise ConfigError("connection: must be a JSON object")
    env = os.environ if env is None else env
    doc = _drop_nulls(raw)
    for key, var in ENV_FALLBACKS.items():
        if key not in doc and env.get(var):
            # An env secret only fills in when no certificate was configured instead.
            if key == "client_secret" and "certificate_path" in doc:
                continue
            doc[key] = env[var]
    schemas.validate(doc, CONNECTION_SCHEMA, error_cls=ConfigError, root="connection")
    credential = Credential(doc.get("client_secret"), doc.get("certificate_path"), doc.get("certificate_passphrase"))
    register_secret(credential.client_secret)
    register_secret(credential.certificate_passphrase)
    _require_file(credential.certificate_path, "connection.certificate_path")
    _require_file(doc.get("ca_bundle"), "connection.ca_bundle")
    endpoints = resolve_endpoints(
        cloud=doc.get("cloud", "global"),
        region=doc.get("region"),
        api_base_url=doc.get("api_base_url"),
        authority_host=doc.get("authority_host"),
        scope=doc.get("scope"),
    )
    return Connection(
        tenant_id=doc["tenant_id"],
        client_id=doc["client_id"],
        credential=credential,
        endpoints=endpoints,
        ca_bundle=doc.get("ca_bundle"),
        proxy=doc.get("proxy"),
        timeout_seconds=float(doc.get("timeout_seconds", 30)),
        state_dir=doc.get("state_dir") or env.get("DEFENDER_IP_STATE_DIR") or platformdirs.user_state_dir("defender-ip"),
        quota=_quota_settings(doc.get("quota", {})),
        cache=CacheSettings(**doc.get("cache", {})),
    )


def manifest_limits() -> tuple[Window, ...]:
    """The documented API limits, as declared in the manifest's quota."""
    (quota,) = load_manifest()["quotas"].values()
    return tuple(Window(int(w["calls"]), float(w["per_seconds"])) for w in quota["limits"])


def _quota_settings(doc: dict) -> QuotaSettings:
    """QuotaSettings from the validated `quota` object, limits defaulting to the manifest's."""
    limits = tuple(Window(int(w["calls"]), float(w["per_seconds"])) for w in doc.get("limits", ())) or manifest_limits()
    lanes = {**DEFAULT_LANE_SHARES, **doc.get("lanes", {}), "analyst": 1.0}
    return QuotaSettings(
        backend=doc.get("backend", "sqlite"),
        redis_url=doc.get("redis_url"),
        share=float(doc.get("share", 0.95)),
        lanes=lanes,
        limits=limits,
    )


def _drop_nulls(doc: dict) -> dict:
    """A copy without null-valued keys, nested objects included (a null counts as missing)."""
    return {k: _drop_nulls(v) if isinstance(v, dict) else v for k, v in doc.items() if v is not None}


def _require_file(path: str | None, field_name: str) -> None:
    """Fail fast, naming the field, when a configured file is missing."""
    if path is not None and not Path(path).is_file():
        raise ConfigError(f"{field_name}: file not found")
