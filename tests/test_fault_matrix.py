"""Every fault of the emulator against a single call and against a batch, as one table.

For each fault and each way of calling, the test asserts what a user would notice: the call
returns within a bound derived from the settings, every item has exactly one record (or, in a
batch, none yet when it is left for a rerun) with a defined status and code, nothing is cached
that should not be, the attempts stay within the retry policy, the exit code is the documented
one, and no secret or token appears in anything written, debug logs included.

docs/RELIABILITY.md renders this table; a test checks that the two agree.
"""

from __future__ import annotations

import json
import logging
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest
from test_cli import command

from plugin.cache import shared_cache
from plugin.config import load_connection
from plugin.emulator import Emulator, faults
from plugin.errors import PluginError
from plugin.host import run_action

IP = "8.8.8.8"  # the emulator sees it (prevalence 11)
JUNK = "not-an-ip"
TIMEOUT = 1.0  # connection timeout_seconds: stalls longer than this are read timeouts
MAX_WAIT = 3.0  # inputs max_wait_seconds (single call); the batch gets --max-runtime 4
MAX_RUNTIME = 4.0
# A call returns within its wait budget, plus one request that started just before the
# deadline, plus one more timeout for sign-in, plus process noise.
CALL_BOUND = MAX_WAIT + 2 * TIMEOUT + 2.0
BATCH_BOUND = MAX_RUNTIME + 2 * TIMEOUT + 4.0  # + interpreter start and sign-in
REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Fault:
    """One row: how to stage the fault, and what a single call and a batch must then show."""

    name: str
    stage: Callable[[Emulator], None]
    status: str | None  # the faulty IP's record status; None when the whole call fails
    code: str | None  # that record's error code, or the whole call's error code
    calls: tuple[int, int]  # stats requests the faulty IP may cost (single call)
    batch_exit: int
    api_base_url: str | None = None  # to point the API somewhere else (connection refused)


def once(answer) -> Callable[[Emulator], None]:
    return lambda emu: emu.script(IP, [answer])


def always(answer) -> Callable[[Emulator], None]:
    return lambda emu: emu.script_all_forever(answer)


def token_always(answer) -> Callable[[Emulator], None]:
    return lambda emu: emu.script_token_forever(answer)


def no_permission(emu: Emulator) -> None:
    emu.set_roles([])


FAULTS = [
    Fault("429 once, no Retry-After", once(faults.throttled()), "enriched", None, (2, 2), 0),
    Fault("429 with Retry-After: 86400 (a day)", once(faults.throttled("86400")), "deferred", "throttled", (1, 1), 75),
    Fault("429 storm (every call, Retry-After: 1)", always(faults.throttled("1")), "deferred", "throttled", (2, 4), 75),
    Fault("500 on every call", always(faults.server_error(500)), "failed", "server_error", (2, 4), 0),
    Fault("502 on every call", always(faults.server_error(502)), "failed", "server_error", (2, 4), 0),
    Fault("503 on every call", always(faults.server_error(503)), "failed", "server_error", (2, 4), 0),
    Fault("504 on every call", always(faults.server_error(504)), "failed", "server_error", (2, 4), 0),
    Fault("503 once", once(faults.server_error(503)), "enriched", None, (2, 2), 0),
    Fault("HTML error page from a proxy (502)", always(faults.html_error_page(502)), "failed", "server_error", (2, 4), 0),
    Fault("connection refused", lambda emu: None, "failed", "connection_error", (0, 0), 0, api_base_url="refused"),
    Fault("connection reset before the answer", always(faults.reset()), "failed", "connection_error", (2, 4), 0),
    Fault("connection reset mid-body", always(faults.reset_mid_body()), "failed", "connection_error", (2, 4), 0),
    Fault("read timeout (server stalls past timeout_seconds)", always(faults.stall(10)), "failed", "timeout", (2, 3), 0),
    Fault("truncated JSON", once(faults.truncated_json()), "failed", "bad_response", (1, 1), 0),
    Fault("200 with a 3 MB body", once(faults.huge_body(3)), "failed", "bad_response", (1, 1), 0),
    Fault("200 text/plain \"OK\"", once(faults.wrong_content_type()), "failed", "bad_response", (1, 1), 0),
    Fault("401 once (token expired or revoked)", once(faults.persistent_unauthorized()), "enriched", None, (2, 2), 0),
    Fault("401 that persists", always(faults.persistent_unauthorized()), None, "auth_failed", (2, 2), 3),
    Fault("403 (no Ip.Read.All)", no_permission, None, "permission_denied", (1, 1), 3),
    Fault("token endpoint 500", token_always(faults.token_server_error(500)), None, "service_unavailable", (0, 0), 3),
    Fault("token endpoint stalls", token_always(faults.stall(10)), None, "service_unavailable", (0, 0), 3),
    Fault("token endpoint answers invalid JSON", token_always(faults.token_invalid_json()), None, "service_unavailable", (0, 0), 3),
    Fault("invalid_client (AADSTS7000215)", token_always(faults.token_invalid_client()), None, "auth_failed", (0, 0), 3),
    Fault("expired secret (AADSTS7000222)", token_always(faults.token_expired_secret()), None, "auth_failed", (0, 0), 3),
]
IDS = [f.name for f in FAULTS]


@pytest.fixture
def emu():
    with Emulator() as emulator:
        yield emulator


def connection(emu: Emulator, tmp_path: Path, fault: Fault, refused: str) -> dict:
    """The emulator's connection with short timeouts and a state dir of its own (cache and pauses)."""
    doc = emu.connection(timeout_seconds=TIMEOUT, state_dir=str(tmp_path / "state"))
    if fault.api_base_url == "refused":
        doc["api_base_url"] = refused
    return doc


def secrets_of(emu: Emulator) -> list[str]:
    return [emu.client_secret, *emu.issued_tokens]


def assert_no_secret(text: str, emu: Emulator) -> None:
    for secret in secrets_of(emu):
        assert secret not in text
    assert not re.search(r"Bearer [A-Za-z0-9_-]{20,}", text)


@pytest.mark.parametrize("fault", FAULTS, ids=IDS)
def test_a_single_call_under_each_fault(fault, emu, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    fault.stage(emu)
    with faults.refused_base_url() as refused:
        conn = connection(emu, tmp_path, fault, refused)
        started = time.monotonic()
        try:
            out = run_action("enrich_ip", {"ips": [IP, JUNK], "max_wait_seconds": MAX_WAIT}, conn)
            error = None
        except PluginError as raised:
            out, error = None, raised
        elapsed = time.monotonic() - started
    assert elapsed <= CALL_BOUND, f"took {elapsed:.1f} s"
    if fault.status is None:
        assert error is not None and error.code == fault.code
        assert_no_secret(str(error) + repr(error.__cause__) + repr(error.__context__), emu)
    else:
        assert error is None, error
        faulty, junk = out["records"]
        assert (faulty["status"], (faulty["error"] or {}).get("code")) == (fault.status, fault.code)
        assert (junk["status"], junk["error"]["code"]) == ("invalid", "invalid_ip")
        if fault.status == "deferred":
            assert faulty["error"]["retry_after_seconds"] > 0
        cached = shared_cache(load_connection(conn)).get(IP, 720)
        assert (cached is not None) == (fault.status == "enriched")  # never a deferral or a failure
        assert_no_secret(json.dumps(out), emu)
    low, high = fault.calls
    assert low <= len(emu.stats_calls(IP)) <= high
    assert_no_secret(caplog.text, emu)


@pytest.mark.parametrize("fault", FAULTS, ids=IDS)
def test_a_batch_under_each_fault(fault, emu, tmp_path):
    fault.stage(emu)
    source, output = tmp_path / "ips.txt", tmp_path / "out.ndjson"
    source.write_text(f"{IP}\n{JUNK}\n{IP}\n")
    with faults.refused_base_url() as refused:
        conn_file = tmp_path / "connection.json"
        conn_file.write_text(json.dumps(connection(emu, tmp_path, fault, refused)))
        started = time.monotonic()
        proc = subprocess.run([*command(), "-v", "batch", str(source), "--output", str(output), "--connection",
                               str(conn_file), "--max-runtime", str(MAX_RUNTIME)],
                              cwd=tmp_path, capture_output=True, text=True, timeout=60)
        elapsed = time.monotonic() - started
    assert elapsed <= BATCH_BOUND, f"took {elapsed:.1f} s"
    assert proc.returncode == fault.batch_exit, proc.stderr[-3000:]
    records = [json.loads(line) for line in output.read_text().splitlines()] if output.exists() else []
    by_line = {r["line"]: r for r in records}
    assert len(by_line) == len(records)  # never two records for one line
    if fault.status in ("enriched", "failed"):
        assert sorted(by_line) == [1, 2, 3]
        assert {(by_line[n]["status"], (by_line[n]["error"] or {}).get("code")) for n in (1, 3)} == {(fault.status, fault.code)}
    else:  # deferred, or a whole-call error: the faulty lines are left for a rerun
        assert 1 not in by_line and 3 not in by_line
    if fault.status is None:
        assert f"error: {fault.code}" in proc.stderr
    if 2 in by_line or fault.status is not None:
        assert by_line[2]["status"] == "invalid"
    assert_no_secret(proc.stdout + proc.stderr + (output.read_text() if output.exists() else ""), emu)


def test_a_token_that_expires_between_two_calls_is_renewed_once(emu, tmp_path):
    conn = emu.connection(state_dir=str(tmp_path / "state"), quota={"backend": "memory"})
    run_action("enrich_ip", {"ips": [IP]}, conn)
    emu.expire_tokens()
    out = run_action("enrich_ip", {"ips": ["8.8.4.4"]}, conn)
    assert out["records"][0]["status"] in ("enriched", "not_seen")
    assert len(emu.token_requests) == 2 and emu.count(status=401) == 1


def test_docs_reliability_table_matches_the_fault_table():
    doc = (REPO / "docs" / "RELIABILITY.md")
    if not doc.exists():
        pytest.skip("docs/ is not part of an installed package; CI runs from the checkout")
    rows = {}
    for line in doc.read_text().splitlines():
        cells = [c.strip().strip("`") for c in line.strip().strip("|").split("|")]
        if len(cells) >= 5 and cells[0] in IDS:
            rows[cells[0]] = cells[1:5]
    assert set(rows) == set(IDS)
    for fault in FAULTS:
        single = fault.status or "whole call fails"
        assert rows[fault.name][:4] == [single, fault.code or "-", f"{fault.calls[0]}-{fault.calls[1]}", str(fault.batch_exit)], fault.name
