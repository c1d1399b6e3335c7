"""Enrich IP: organisation prevalence and first/last seen from Defender, one record per item."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from plugin.cache import NullCache, ResultCache, shared_cache
from plugin.config import Connection
from plugin.errors import InputError
from plugin.ips import ParsedItem, parse_item, split_items
from plugin.mapping import MappingOptions, build_envelope, build_record
from plugin.models import LookupOutcome, Meter
from plugin.quota import shared_quota

if TYPE_CHECKING:
    from plugin.session import DefenderSession

# How long a call may wait for quota and Retry-After by default: a person is waiting on an
# analyst call; a playbook step should not stall a run; a scheduled job can sit in line.
DEFAULT_MAX_WAIT_SECONDS = {"analyst": 10.0, "playbook": 60.0, "scheduled": 300.0}
MAX_ITEMS = 1000
CONCURRENCY = 4  # parallel lookups per call; the quota, not this, sets the pace


@dataclass(frozen=True)
class EnrichRequest:
    """The validated inputs of one Enrich IP call, defaults applied."""

    items: list[str]
    priority: str
    max_wait_seconds: float
    use_cache: bool
    options: MappingOptions


def run(inputs: dict, connection: Connection, *, session: DefenderSession | None = None) -> dict:
    """Entrypoint: enrich every item of `inputs["ips"]` and return the incident-enrichment envelope."""
    request = parse_inputs(inputs, connection)
    meter = Meter()
    parsed = [parse_item(item) for item in request.items]
    cache = shared_cache(connection)
    # use_cache: false skips reading the cache; fresh answers are still stored for others.
    outcomes, misses = _from_cache(cache if request.use_cache else NullCache(), _unique_callable(parsed), request, meter)
    if misses:
        session = session or _shared_session(connection)
        deadline = session.clock() + request.max_wait_seconds  # counted from the start of the call
        for ip, outcome in _look_up(session, misses, request, deadline, meter).items():
            cache.put(ip, request.options.look_back_hours, outcome)
            outcomes[ip] = outcome
    records = [build_record(item, outcomes.get(item.ip) if item.status == "callable" else None, request.options)
               for item in parsed]
    quota = session.quota if session else shared_quota(connection)
    return build_envelope(records, api_calls=meter.api_calls, cache_hits=meter.cache_hits,
                          quota_state=quota.state(request.priority))


def parse_inputs(inputs: dict, connection: Connection) -> EnrichRequest:
    """Schema-valid inputs to an EnrichRequest; an empty or oversized item list is input_invalid."""
    items = split_items(inputs["ips"])
    if not items:
        raise InputError("inputs.ips: holds no items")
    if len(items) > MAX_ITEMS:
        raise InputError(f"inputs.ips: at most {MAX_ITEMS} items per call (use `defender-ip batch` for more)")
    priority = inputs.get("priority", "playbook")
    thresholds = inputs.get("prevalence_thresholds", {})
    # JSON Schema counts 24.0 as an integer; the API does not, so integers are made int here.
    options = MappingOptions(
        look_back_hours=int(inputs.get("look_back_hours", 720)),
        rare_max=int(thresholds.get("rare_max", 10)),
        uncommon_max=int(thresholds.get("uncommon_max", 100)),
        recent_first_seen_days=inputs.get("recent_first_seen_days", 7),
        portal_base=connection.endpoints.portal_url,
    )
    if options.rare_max > options.uncommon_max:
        raise InputError("inputs.prevalence_thresholds: rare_max must not exceed uncommon_max")
    return EnrichRequest(
        items=items,
        priority=priority,
        max_wait_seconds=float(inputs.get("max_wait_seconds", DEFAULT_MAX_WAIT_SECONDS[priority])),
        use_cache=inputs.get("use_cache", True),
        options=options,
    )


def _unique_callable(parsed: list[ParsedItem]) -> list[str]:
    """Canonical IPs worth a call, each once, in input order: a repeated IP costs one call."""
    return list(dict.fromkeys(item.ip for item in parsed if item.status == "callable"))


def _from_cache(cache: ResultCache, ips: list[str], request: EnrichRequest,
                meter: Meter) -> tuple[dict[str, LookupOutcome], list[str]]:
    """Cached outcomes, and the IPs still to look up."""
    hits, misses = {}, []
    for ip in ips:
        outcome = cache.get(ip, request.options.look_back_hours)
        if outcome is None:
            misses.append(ip)
        else:
            hits[ip] = outcome
            meter.count_hit()
    return hits, misses


def _shared_session(connection: Connection) -> DefenderSession:
    # Imported here, not at the top: a call answered entirely from the cache never loads
    # requests, MSAL or cryptography, which keeps a cached `defender-ip run` fast to start.
    from plugin.session import shared_session

    return shared_session(connection)


def _look_up(session: DefenderSession, ips: list[str], request: EnrichRequest, deadline: float,
             meter: Meter) -> dict[str, LookupOutcome]:
    """Outcomes for each IP, looked up in parallel; a whole-call error stops the rest and propagates."""
    from plugin.defender import DefenderClient

    client = DefenderClient(session)

    def one(ip: str) -> LookupOutcome:
        return client.ip_stats(ip, look_back_hours=request.options.look_back_hours, lane=request.priority,
                               deadline=deadline, meter=meter)

    if len(ips) <= 1:
        return {ip: one(ip) for ip in ips}
    with ThreadPoolExecutor(max_workers=CONCURRENCY, thread_name_prefix="enrich-ip") as pool:
        futures = {ip: pool.submit(one, ip) for ip in ips}
        try:
            return {ip: future.result() for ip, future in futures.items()}
        except BaseException:
            pool.shutdown(cancel_futures=True)
            raise
