"""Schemas, manifest and validation messages: valid documents pass, broken ones fail safely."""

from __future__ import annotations

import copy
import json
import math

import pytest
from jsonschema import Draft202012Validator

import plugin
from plugin import resources, schemas
from plugin.errors import ConfigError, InputError, PluginError

CONNECTION = "schemas/connection.schema.json"
ENRICH_INPUT = "schemas/enrich_ip.input.schema.json"
ENRICH_OUTPUT = "schemas/incident-enrichment.schema.json"
TEST_INPUT = "schemas/test_connection.input.schema.json"
TEST_OUTPUT = "schemas/test_connection.output.schema.json"
MANIFEST_SCHEMA = "schemas/manifest.schema.json"

GUID = "8f2a1c3e-5b7d-4e9f-a1b2-c3d4e5f60718"
SECRET = "Zq9~SECRET-must-never-leak~7f1c"


# --- helpers -------------------------------------------------------------------------------


def check_connection(connection: dict) -> None:
    """Validate a connection the way the host does."""
    schemas.validate(connection, CONNECTION, error_cls=ConfigError, root="connection")


def check_inputs(inputs: object) -> None:
    """Validate enrich_ip inputs the way the host does."""
    schemas.validate(inputs, ENRICH_INPUT, error_cls=InputError, root="inputs")


def with_changes(document: dict, *changes: tuple[tuple, object]) -> dict:
    """A deep copy of `document` with each (path, value) set; value DELETE removes the key."""
    changed = copy.deepcopy(document)
    for path, value in changes:
        parent = changed
        for part in path[:-1]:
            parent = parent[part]
        if value is DELETE:
            del parent[path[-1]]
        else:
            parent[path[-1]] = value
    return changed


DELETE = object()


def walk_refs(node: object):
    """Every $ref value anywhere in a schema."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from walk_refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from walk_refs(item)


# --- manifest --------------------------------------------------------------------------------


def test_manifest_validates_against_its_schema():
    schemas.validate_output(resources.load_manifest(), MANIFEST_SCHEMA)


def test_manifest_version_is_the_package_version():
    assert resources.load_manifest()["version"] == plugin.__version__


def test_manifest_paths_and_quota_names_resolve():
    manifest = resources.load_manifest()
    paths = [manifest["connection_schema"]]
    for action in manifest["actions"]:
        assert action["quota"] is None or action["quota"] in manifest["quotas"]
        paths += [action["input_schema"], action["output_schema"]]
    for path in paths:
        assert resources.resolve(path).is_file(), path


def test_manifest_declares_both_actions():
    assert resources.manifest_action("enrich_ip")["name"] == "Enrich IP"
    assert resources.manifest_action("test_connection")["name"] == "Test connection"
    assert resources.manifest_action("enrich_ip")["required_permissions"] == ["Ip.Read.All"]


def test_unknown_action_is_an_input_error():
    with pytest.raises(InputError, match="unknown action 'nope'"):
        resources.manifest_action("nope")


def test_loaders_return_copies():
    resources.load_manifest()["actions"].clear()
    resources.load_schema(CONNECTION)["properties"].clear()
    assert resources.load_manifest()["actions"]
    assert resources.load_schema(CONNECTION)["properties"]


def test_paths_cannot_leave_the_data_folder():
    with pytest.raises(ValueError):
        resources.resolve("../../etc/passwd")


@pytest.mark.parametrize(
    "change",
    [
        (("version",), "0.1"),
        (("actions", 0, "entrypoint"), "plugin.actions.enrich_ip.run"),
        (("actions", 0, "input_schema"), "/etc/schema.json"),
        (("actions", 0, "input_schema"), "schemas/../../x.json"),
        (("quotas", "defender_api", "limits"), []),
        (("quotas", "defender_api", "limits", 0, "calls"), 0),
        (("actions", 0, "read_only"), "yes"),
        (("actions", 0, "category"), "magic"),
        (("actions", 0, "surprise"), 1),
        (("id",), DELETE),
    ],
    ids=lambda change: ".".join(map(str, change[0])) + "=" + repr(change[1])[:20],
)
def test_broken_manifests_fail(change):
    broken = with_changes(resources.load_manifest(), change)
    with pytest.raises(PluginError):
        schemas.validate_output(broken, MANIFEST_SCHEMA)


# --- the schema files themselves ---------------------------------------------------------------


@pytest.mark.parametrize("relpath", resources.schema_paths())
def test_schema_is_valid_2020_12_with_its_own_id(relpath):
    schema = resources.load_schema(relpath)
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == "https://schemas.defender-ip-enrichment.dev/" + relpath.split("/")[-1]


@pytest.mark.parametrize("relpath", resources.schema_paths())
def test_every_ref_resolves_offline(relpath):
    schema = resources.load_schema(relpath)
    resolver = schemas.registry().resolver(base_uri=schema["$id"])
    refs = list(walk_refs(schema))
    for ref in refs:
        resolver.lookup(ref)  # raises Unresolvable if a $ref points nowhere
    assert schema["$id"] in schemas.registry()


def test_all_five_schemas_are_there():
    assert resources.schema_paths() == sorted(
        [CONNECTION, ENRICH_INPUT, ENRICH_OUTPUT, TEST_INPUT, TEST_OUTPUT, MANIFEST_SCHEMA]
    )


# --- enrich_ip output envelope -----------------------------------------------------------------


def observable(ip: str) -> dict:
    """The OCSF observable of an IP."""
    return {"name": "ip", "type": "IP Address", "type_id": 2, "value": ip}


def enrichment(ip: str, prevalence: int, first: tuple | None, last: tuple | None) -> dict:
    """An enrichment object; `first`/`last` are (epoch ms, RFC 3339) or None."""
    return {
        "name": "ip",
        "value": ip,
        "type": "prevalence",
        "provider": "Microsoft Defender for Endpoint",
        "created_time": 1796315850123,
        "created_time_dt": "2026-12-04T16:37:30.123Z",
        "src_url": f"https://security.microsoft.com/ip/{ip}/overview",
        "data": {
            "organization_prevalence": prevalence,
            "seen": prevalence > 0,
            "look_back_hours": 720,
            "first_seen_time": first[0] if first else None,
            "first_seen_time_dt": first[1] if first else None,
            "last_seen_time": last[0] if last else None,
            "last_seen_time_dt": last[1] if last else None,
        },
    }


def record(item: str, status: str, **parts) -> dict:
    """A record with every field present; parts override the nulls."""
    base = {"input": item, "status": status, "observable": None, "enrichment": None,
            "assessment": None, "cached": False, "error": None}
    return {**base, **parts}


def error(code: str, retry: float | None = None) -> dict:
    """A record error."""
    return {"code": code, "message": f"{code} happened", "retry_after_seconds": retry}


VALID_ENVELOPE = {
    "schema_version": "1.0",
    "action": "enrich_ip",
    "status": "partial",
    "summary": {"requested": 8, "enriched": 1, "not_seen": 1, "skipped": 1, "invalid": 2,
                "deferred": 1, "failed": 2, "api_calls": 4, "cache_hits": 1},
    "records": [
        record(" 10.209.67.177", "enriched", observable=observable("10.209.67.177"),
               enrichment=enrichment("10.209.67.177", 63515,
                                     (1501421766000, "2017-07-30T13:36:06Z"),
                                     (1504013579000, "2017-08-29T13:32:59Z")),
               assessment={"prevalence_band": "common", "recently_first_seen": False},
               cached=True),
        record("2001:db8::1", "not_seen", observable=observable("2001:db8::1"),
               enrichment=enrichment("2001:db8::1", 0, None, None),
               assessment={"prevalence_band": "none", "recently_first_seen": False}),
        record("127.0.0.1", "skipped", observable=observable("127.0.0.1"), error=error("loopback")),
        record("not an ip", "invalid", error=error("invalid_ip")),
        record("10.0.0.300x", "invalid", observable=observable("10.0.0.3"), error=error("api_invalid_ip")),
        record("8.8.8.8", "deferred", observable=observable("8.8.8.8"),
               error=error("quota_wait_exceeded", 12.5)),
        record("8.8.4.4", "failed", observable=observable("8.8.4.4"), error=error("timeout")),
        record("1.1.1.1", "failed", observable=observable("1.1.1.1"), error=error("server_error", 30)),
    ],
    "quota": {
        "backend": "sqlite",
        "lane": "playbook",
        "windows": [
            {"calls": 100, "per_seconds": 60, "cap": 85, "used": 4, "left": 81, "next_free_in_seconds": 0},
            {"calls": 1500, "per_seconds": 3600, "cap": 1282, "used": 4, "left": 1278,
             "next_free_in_seconds": 0.0},
        ],
        "cooldown_seconds": 0,
    },
    "markdown": "| IP | status |\n|---|---|\n",
}

# Index of each record in VALID_ENVELOPE, by what the broken variants need.
ENRICHED, NOT_SEEN, SKIPPED, LOCAL_INVALID, API_INVALID, DEFERRED, FAILED = range(7)


def test_valid_envelope_validates():
    schemas.validate_output(VALID_ENVELOPE, ENRICH_OUTPUT)


def test_envelope_with_no_records_is_still_shaped_right():
    empty = with_changes(VALID_ENVELOPE, (("records",), []))
    schemas.validate_output(empty, ENRICH_OUTPUT)


BROKEN_ENVELOPES = {
    "wrong type in a record": [(("records", ENRICHED, "cached"), "yes")],
    "missing record field": [(("records", ENRICHED, "assessment"), DELETE)],
    "missing envelope field": [(("markdown",), DELETE)],
    "enriched with null enrichment": [(("records", ENRICHED, "enrichment"), None)],
    "enriched with an error": [(("records", ENRICHED, "error"), error("timeout"))],
    "enriched with prevalence 0": [(("records", ENRICHED, "enrichment", "data", "organization_prevalence"), 0)],
    "not_seen with seen true": [(("records", NOT_SEEN, "enrichment", "data", "seen"), True)],
    "not_seen with a band": [(("records", NOT_SEEN, "assessment", "prevalence_band"), "rare")],
    "deferred with null retry_after_seconds": [(("records", DEFERRED, "error", "retry_after_seconds"), None)],
    "deferred without retry_after_seconds": [(("records", DEFERRED, "error", "retry_after_seconds"), DELETE)],
    "deferred with negative retry": [(("records", DEFERRED, "error", "retry_after_seconds"), -1)],
    "deferred with null error": [(("records", DEFERRED, "error"), None)],
    "unknown record status": [(("records", FAILED, "status"), "unknown")],
    "unknown call status": [(("status",), "ok")],
    "extra key in a record": [(("records", ENRICHED, "extra"), 1)],
    "extra key in the envelope": [(("extra",), 1)],
    "extra key in the enrichment data": [(("records", ENRICHED, "enrichment", "data", "extra"), 1)],
    "skipped with a failure code": [(("records", SKIPPED, "error", "code"), "timeout")],
    "skipped without observable": [(("records", SKIPPED, "observable"), None)],
    "api_invalid_ip without observable": [(("records", API_INVALID, "observable"), None)],
    "failed with enrichment": [(("records", FAILED, "enrichment"), VALID_ENVELOPE["records"][0]["enrichment"])],
    "observable with wrong type_id": [(("records", FAILED, "observable", "type_id"), 3)],
    "time without its RFC 3339 twin": [(("records", ENRICHED, "enrichment", "data", "first_seen_time_dt"), None)],
    "RFC 3339 with a space": [(("records", ENRICHED, "enrichment", "created_time_dt"), "2026-12-04 16:37:30Z")],
    "negative count": [(("summary", "api_calls"), -1)],
    "unknown lane": [(("quota", "lane"), "vip")],
    "NaN in the quota": [(("quota", "cooldown_seconds"), math.nan)],
    "wrong schema_version": [(("schema_version",), "2.0")],
}


@pytest.mark.parametrize("changes", BROKEN_ENVELOPES.values(), ids=BROKEN_ENVELOPES.keys())
def test_broken_envelopes_fail(changes):
    broken = with_changes(VALID_ENVELOPE, *changes)
    with pytest.raises(PluginError) as caught:
        schemas.validate_output(broken, ENRICH_OUTPUT)
    assert caught.value.code == "output_invalid"
    assert str(caught.value).startswith("output")


def test_output_message_names_the_field():
    broken = with_changes(VALID_ENVELOPE, (("records", ENRICHED, "cached"), "yes"))
    with pytest.raises(PluginError, match=r"^output\.records\[0\]\.cached: must be true or false$"):
        schemas.validate_output(broken, ENRICH_OUTPUT)


# --- test_connection -----------------------------------------------------------------------------


VALID_TEST_OUTPUT = {
    "schema_version": "1.0",
    "action": "test_connection",
    "status": "success",
    "cloud": "global",
    "api_base_url": "https://api.security.microsoft.com",
    "authority_host": "https://login.microsoftonline.com",
    "token_acquired": True,
    "stats_call": {"ip": "10.209.67.177", "status": "enriched"},
    "elapsed_ms": 412,
    "quota": VALID_ENVELOPE["quota"],
    "markdown": "Connection works.",
}


def test_test_connection_output_validates():
    schemas.validate_output(VALID_TEST_OUTPUT, TEST_OUTPUT)


@pytest.mark.parametrize(
    "change",
    [(("quota", "backend"), "disk"), (("token_acquired",), False), (("stats_call", "status"), "failed")],
    ids=["quota via cross-file $ref", "token not acquired", "stats call status"],
)
def test_broken_test_connection_output_fails(change):
    with pytest.raises(PluginError):
        schemas.validate_output(with_changes(VALID_TEST_OUTPUT, change), TEST_OUTPUT)


@pytest.mark.parametrize("inputs", [{}, {"ip": "10.209.67.177"}])
def test_test_connection_inputs_ok(inputs):
    schemas.validate(inputs, TEST_INPUT, error_cls=InputError, root="inputs")


def test_test_connection_inputs_reject_unknown_key():
    with pytest.raises(InputError, match=r"^inputs: unknown field 'ips'$"):
        schemas.validate({"ips": "1.1.1.1"}, TEST_INPUT, error_cls=InputError, root="inputs")


# --- connection ----------------------------------------------------------------------------------


BASE = {"tenant_id": GUID, "client_id": GUID}

GOOD_CONNECTIONS = {
    "secret": {**BASE, "client_secret": SECRET},
    "certificate": {**BASE, "certificate_path": "/etc/defender/app.pem"},
    "certificate with passphrase": {**BASE, "certificate_path": "/etc/app.pfx", "certificate_passphrase": SECRET},
    "domain tenant": {**BASE, "tenant_id": "contoso.onmicrosoft.com", "client_secret": SECRET},
    "everything": {
        **BASE, "client_secret": SECRET, "cloud": "global", "region": "eu",
        "api_base_url": "https://127.0.0.1:8443", "authority_host": "https://localhost:8443/",
        "scope": "https://api.securitycenter.microsoft.com/.default", "ca_bundle": "/tmp/ca.pem",
        "proxy": "http://proxy.example:3128", "timeout_seconds": 2.5, "state_dir": "/var/lib/defender-ip",
        "quota": {"backend": "redis", "redis_url": "redis://localhost:6379/0", "share": 1,
                  "lanes": {"playbook": 0.9, "scheduled": 0.5},
                  "limits": [{"calls": 10, "per_seconds": 1.5}]},
        "cache": {"enabled": False, "ttl_seconds": 0},
    },
    "government cloud": {**BASE, "client_secret": SECRET, "cloud": "gcc_high"},
}


@pytest.mark.parametrize("connection", GOOD_CONNECTIONS.values(), ids=GOOD_CONNECTIONS.keys())
def test_good_connections_pass(connection):
    check_connection(connection)


# (connection, the start of the expected message)
BAD_CONNECTIONS = {
    "both credentials": (
        {**BASE, "client_secret": SECRET, "certificate_path": "/x.pem"},
        "connection: give exactly one credential: client_secret or certificate_path",
    ),
    "no credential": (BASE, "connection: give exactly one credential: client_secret or certificate_path"),
    "passphrase without certificate": (
        {**BASE, "client_secret": SECRET, "certificate_passphrase": SECRET},
        "connection.certificate_path: required when certificate_passphrase is given",
    ),
    "bad client GUID": ({**BASE, "client_id": "not-a-guid-" + SECRET, "client_secret": SECRET},
                        "connection.client_id: must be a GUID"),
    "bad tenant": ({**BASE, "tenant_id": "contoso onmicrosoft", "client_secret": SECRET},
                   "connection.tenant_id: must be a GUID or a domain name"),
    "tenant with trailing newline": ({**BASE, "tenant_id": "contoso.com\n", "client_secret": SECRET},
                                     "connection.tenant_id: must be a GUID or a domain name"),
    "missing tenant": ({"client_id": GUID, "client_secret": SECRET}, "connection.tenant_id: required"),
    "unknown key": ({**BASE, "client_secret": SECRET, "verify": False}, "connection: unknown field 'verify'"),
    "timeout too long": ({**BASE, "client_secret": SECRET, "timeout_seconds": 301},
                         "connection.timeout_seconds: must be at most 300"),
    "timeout zero": ({**BASE, "client_secret": SECRET, "timeout_seconds": 0},
                     "connection.timeout_seconds: must be greater than 0"),
    "timeout NaN": ({**BASE, "client_secret": SECRET, "timeout_seconds": math.nan},
                    "connection.timeout_seconds: must be a number"),
    "unknown cloud": ({**BASE, "client_secret": SECRET, "cloud": "china"},
                      "connection.cloud: must be one of global, gcc, gcc_high, dod"),
    "region outside global": ({**BASE, "client_secret": SECRET, "cloud": "dod", "region": "eu"},
                              "connection: region is only for cloud global"),
    "secret of the wrong type": ({**BASE, "client_secret": 12345},
                                 "connection.client_secret: must be a string"),
    "redis without url": ({**BASE, "client_secret": SECRET, "quota": {"backend": "redis"}},
                          "connection.quota.redis_url: required"),
    "share above 1": ({**BASE, "client_secret": SECRET, "quota": {"share": 1.5}},
                      "connection.quota.share: must be at most 1"),
    "empty limits": ({**BASE, "client_secret": SECRET, "quota": {"limits": []}},
                     "connection.quota.limits: must not be empty"),
    "bad limit": ({**BASE, "client_secret": SECRET, "quota": {"limits": [{"calls": 1.5, "per_seconds": 60}]}},
                  "connection.quota.limits[0].calls: must be an integer"),
    "unknown lane": ({**BASE, "client_secret": SECRET, "quota": {"lanes": {"analyst": 1}}},
                     "connection.quota.lanes: unknown field 'analyst'"),
    "negative ttl": ({**BASE, "client_secret": SECRET, "cache": {"ttl_seconds": -1}},
                     "connection.cache.ttl_seconds: must be at least 0"),
    "not an object": (SECRET, "connection: must be an object"),
}


@pytest.mark.parametrize(("connection", "expected"), BAD_CONNECTIONS.values(), ids=BAD_CONNECTIONS.keys())
def test_bad_connections_fail_naming_the_field_without_the_secret(connection, expected):
    with pytest.raises(ConfigError) as caught:
        check_connection(connection)
    error = caught.value
    assert error.code == "config_invalid"
    assert str(error).startswith(expected)
    for text in (str(error), repr(error), json.dumps(error.to_dict())):
        assert SECRET not in text
        assert "not-a-guid" not in text  # a rejected value is never echoed either


def test_message_counts_the_other_problems():
    connection = {"client_secret": SECRET, "timeout_seconds": 0}
    with pytest.raises(ConfigError) as caught:
        check_connection(connection)
    assert str(caught.value) == "connection.tenant_id: required (and 2 more problems)"


# --- enrich_ip inputs ----------------------------------------------------------------------------


GOOD_INPUTS = {
    "list": {"ips": ["10.209.67.177", "2001:db8::1", "junk is a record, not an error"]},
    "string": {"ips": "10.209.67.177, 8.8.8.8 1.1.1.1"},
    "everything": {"ips": ["1.1.1.1"], "look_back_hours": 1, "priority": "analyst", "max_wait_seconds": 0,
                   "use_cache": False, "prevalence_thresholds": {"rare_max": 5, "uncommon_max": 50},
                   "recent_first_seen_days": 0.5},
    "longest look-back": {"ips": ["1.1.1.1"], "look_back_hours": 720, "max_wait_seconds": 3600},
}


@pytest.mark.parametrize("inputs", GOOD_INPUTS.values(), ids=GOOD_INPUTS.keys())
def test_good_inputs_pass(inputs):
    check_inputs(inputs)


BAD_INPUTS = {
    "look_back_hours 0": ({"ips": ["1.1.1.1"], "look_back_hours": 0}, "inputs.look_back_hours: must be at least 1"),
    "look_back_hours 721": ({"ips": ["1.1.1.1"], "look_back_hours": 721}, "inputs.look_back_hours: must be at most 720"),
    "look_back_hours text": ({"ips": ["1.1.1.1"], "look_back_hours": "12"},
                             "inputs.look_back_hours: must be an integer"),
    "unknown key": ({"ips": ["1.1.1.1"], "foo": 1}, "inputs: unknown field 'foo'"),
    "unknown priority": ({"ips": ["1.1.1.1"], "priority": "urgent"},
                         "inputs.priority: must be one of analyst, playbook, scheduled"),
    "ips a number": ({"ips": 5}, "inputs.ips: must be a list of strings or a string"),
    "ips an object": ({"ips": {"ip": "1.1.1.1"}}, "inputs.ips: must be a list of strings or a string"),
    "ips empty list": ({"ips": []}, "inputs.ips: must not be empty"),
    "ips blank string": ({"ips": " ,\n"}, "inputs.ips: must hold at least one IP"),
    "ips with a number": ({"ips": ["1.1.1.1", 7]}, "inputs.ips[1]: must be a string"),
    "too many ips": ({"ips": ["1.1.1.1"] * 1001}, "inputs.ips: must have at most 1000 items"),
    "ips missing": ({"priority": "analyst"}, "inputs.ips: required"),
    "max_wait_seconds too long": ({"ips": "1.1.1.1", "max_wait_seconds": 3601},
                                  "inputs.max_wait_seconds: must be at most 3600"),
    "max_wait_seconds infinite": ({"ips": "1.1.1.1", "max_wait_seconds": math.inf},
                                  "inputs.max_wait_seconds: must be a number"),
    "use_cache text": ({"ips": "1.1.1.1", "use_cache": "no"}, "inputs.use_cache: must be true or false"),
    "threshold zero": ({"ips": "1.1.1.1", "prevalence_thresholds": {"rare_max": 0}},
                       "inputs.prevalence_thresholds.rare_max: must be at least 1"),
    "recent days zero": ({"ips": "1.1.1.1", "recent_first_seen_days": 0},
                         "inputs.recent_first_seen_days: must be greater than 0"),
    "not an object": (["1.1.1.1"], "inputs: must be an object"),
}


@pytest.mark.parametrize(("inputs", "expected"), BAD_INPUTS.values(), ids=BAD_INPUTS.keys())
def test_bad_inputs_fail_naming_the_field(inputs, expected):
    with pytest.raises(InputError) as caught:
        check_inputs(inputs)
    assert caught.value.code == "input_invalid"
    assert str(caught.value) == expected


def test_unknown_key_name_is_bounded_and_printable():
    key = "\x1b" + "k" * 200
    with pytest.raises(InputError) as caught:
        check_inputs({"ips": "1.1.1.1", key: 1})
    message = str(caught.value)
    assert "\x1b" not in message
    assert "k" * 61 + "..." in message and "k" * 62 not in message


def test_validator_is_cached():
    assert schemas.validator(ENRICH_INPUT) is schemas.validator(ENRICH_INPUT)
