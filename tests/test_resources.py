"""Resource bounds: nothing left behind after calls, oversized answers refused, item count capped."""

from __future__ import annotations

import gc
import os
import threading

import pytest

from plugin.emulator import Answer, Emulator
from plugin.errors import InputError
from plugin.host import run_action

HIGH = {"backend": "memory", "limits": [{"calls": 1_000_000, "per_seconds": 60}]}


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts file handles through /proc")
def test_a_thousand_calls_leave_no_thread_or_file_handle_behind():
    with Emulator(limits=[(1_000_000, 60)]) as emu:
        conn = emu.connection(quota=HIGH)
        inputs = {"ips": ["8.8.8.8", "8.8.4.4"], "use_cache": False, "priority": "analyst"}
        for _ in range(20):  # warm up: the session, its connection pool, the emulator's handler threads
            run_action("enrich_ip", inputs, conn)
        gc.collect()
        threads, fds = threading.active_count(), open_fds()
        for _ in range(1000):
            out = run_action("enrich_ip", inputs, conn)
            assert out["summary"]["api_calls"] == 2
        gc.collect()
        assert threading.active_count() <= threads
        assert open_fds() <= fds
        assert len(emu.stats_calls()) == 2040


def test_an_answer_larger_than_the_cap_is_a_bad_response_not_a_memory_spike():
    with Emulator() as emu:
        emu.script("8.8.8.8", [Answer(status=200, body=b'{"organizationPrevalence": 1, "pad": "' + b"x" * 3_000_000 + b'"}',
                                      headers={"Content-Type": "application/json"})])
        record = run_action("enrich_ip", {"ips": ["8.8.8.8"]}, emu.connection(quota=HIGH))["records"][0]
    assert (record["status"], record["error"]["code"]) == ("failed", "bad_response")
    assert "1 MiB" in record["error"]["message"]


@pytest.mark.parametrize("ips", [["8.8.8.8"] * 1001, " ".join(["8.8.8.8"] * 1001)])
def test_more_items_than_the_per_call_cap_is_input_invalid_naming_the_field(ips):
    with pytest.raises(InputError, match="inputs.ips: .*at most 1000 items"):
        run_action("enrich_ip", {"ips": ips}, {"tenant_id": "contoso.onmicrosoft.com",
                   "client_id": "11111111-2222-3333-4444-555555555555", "client_secret": "x" * 12})
