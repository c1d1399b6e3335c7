"""The `defender-ip` command as a user runs it: a subprocess, started from another folder."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from support import SECRET


def command() -> list[str]:
    """The installed console script (required under CI), else `python -m plugin` for a source checkout."""
    script = shutil.which("defender-ip", path=str(Path(sys.executable).parent))
    if script:
        return [script]
    assert os.environ.get("CI") != "true", "the defender-ip console script is not installed"
    return [sys.executable, "-m", "plugin"]


def cli(*args: str, cwd: Path, stdin: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([*command(), *args], cwd=cwd, input=stdin, capture_output=True, text=True, timeout=timeout)


def test_readme_first_command_prints_the_documented_statistics(tmp_path):
    result = cli("enrich", "10.209.67.177", "--emulator", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for expected in ("63515", "2017-07-30T13:36:06Z", "2017-08-29T13:32:59Z", "enriched"):
        assert expected in result.stdout


def test_enrich_json_prints_a_schema_valid_envelope(tmp_path):
    result = cli("enrich", "10.209.67.177", "127.0.0.1", "--emulator", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert [r["status"] for r in out["records"]] == ["enriched", "skipped"]


def test_run_prints_the_output_json_and_exits_0_whatever_the_record_statuses(tmp_path):
    inputs = tmp_path / "inputs.json"
    inputs.write_text(json.dumps({"ips": "not-an-ip, 192.0.2.1", "look_back_hours": 48}))
    result = cli("run", "enrich_ip", "--input", str(inputs), "--emulator", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert [r["status"] for r in out["records"]] == ["invalid", "not_seen"]
    assert out["status"] == "partial"


@pytest.mark.parametrize(
    "inputs, field",
    [
        ({"ips": ["8.8.8.8"], "look_back_hours": 0}, "inputs.look_back_hours"),
        ({"ips": ["8.8.8.8"], "colour": "red"}, "colour"),
        ({"ips": 42}, "inputs.ips"),
        ({"ips": []}, "inputs.ips"),
    ],
)
def test_run_with_malformed_inputs_exits_2_with_a_json_error_naming_the_field(tmp_path, inputs, field):
    result = cli("run", "enrich_ip", "--input", "-", "--emulator", cwd=tmp_path, stdin=json.dumps(inputs))
    assert result.returncode == 2
    error = json.loads(result.stdout)["error"]
    assert error["code"] == "input_invalid" and field in error["message"]


def test_run_with_inputs_that_are_not_json_exits_2(tmp_path):
    result = cli("run", "enrich_ip", "--input", "-", cwd=tmp_path, stdin="{not json")
    assert result.returncode == 2
    assert json.loads(result.stdout)["error"]["code"] == "input_invalid"


@pytest.mark.parametrize(
    "connection, code",
    [
        ({"tenant_id": "contoso.onmicrosoft.com", "client_id": "not-a-guid", "client_secret": SECRET}, "config_invalid"),
        ({"tenant_id": "contoso.onmicrosoft.com", "client_id": "66666666-7777-8888-9999-000000000000",
          "client_secret": SECRET, "api_base_url": "https://collector.evil.example"}, "unsafe_endpoint"),
    ],
)
def test_run_with_a_bad_connection_exits_3_and_never_prints_the_secret(tmp_path, connection, code):
    path = tmp_path / "connection.json"
    path.write_text(json.dumps(connection))
    result = cli("-v", "run", "enrich_ip", "--input", "-", "--connection", str(path), cwd=tmp_path,
                 stdin=json.dumps({"ips": ["8.8.8.8"]}))
    assert result.returncode == 3
    assert json.loads(result.stdout)["error"]["code"] == code
    assert SECRET not in result.stdout + result.stderr


def test_check_against_the_emulator_exits_0(tmp_path):
    result = cli("check", "--emulator", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "10.209.67.177" in result.stdout


def test_a_served_emulator_and_its_connection_file_work_for_run_and_check(tmp_path):
    connection = tmp_path / "emulator.json"
    server = subprocess.Popen([*command(), "emulator", "--write-connection", str(connection)], cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not connection.exists() or not connection.read_text().strip().endswith("}"):
            assert server.poll() is None and time.monotonic() < deadline, "emulator did not start"
            time.sleep(0.05)
        assert connection.stat().st_mode & 0o077 == 0  # it holds the client secret
        doc = json.loads(connection.read_text())
        doc["quota"] = {"backend": "memory"}
        connection.write_text(json.dumps(doc))
        check = cli("check", "--connection", str(connection), cwd=tmp_path)
        assert check.returncode == 0, check.stderr
        run = cli("-v", "run", "enrich_ip", "--connection", str(connection), cwd=tmp_path,
                  stdin=json.dumps({"ips": ["10.209.67.177"], "priority": "analyst"}))
        assert run.returncode == 0, run.stderr
        assert json.loads(run.stdout)["records"][0]["enrichment"]["data"]["organization_prevalence"] == 63515
        assert doc["client_secret"] not in run.stdout + run.stderr
        assert re.search(r'access_token"?: "(?!\*\*\*")', run.stderr) is None  # masked wherever a logger prints it
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_a_wrong_secret_makes_check_exit_3_with_the_aadsts_code(tmp_path):
    from plugin.emulator import Emulator

    with Emulator() as emu:
        path = tmp_path / "connection.json"
        path.write_text(json.dumps(emu.connection(client_secret=SECRET, quota={"backend": "memory"})))
        result = cli("-v", "check", "--connection", str(path), cwd=tmp_path)
    assert result.returncode == 3
    assert "auth_failed" in result.stderr and "AADSTS7000215" in result.stderr
    assert SECRET not in result.stdout + result.stderr


def test_python_dash_m_plugin_is_the_same_command(tmp_path):
    result = subprocess.run([sys.executable, "-m", "plugin", "--version"], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.startswith("defender-ip ")


def test_quota_shows_what_earlier_processes_used_of_the_shared_budget(tmp_path):
    from plugin.emulator import Emulator

    with Emulator() as emu:
        path = tmp_path / "connection.json"
        path.write_text(json.dumps(emu.connection(quota={"backend": "sqlite"}, state_dir=str(tmp_path / "state"))))
        ran = cli("run", "enrich_ip", "--connection", str(path), cwd=tmp_path, stdin=json.dumps({"ips": ["8.8.8.8", "8.8.4.4"]}))
        assert ran.returncode == 0, ran.stderr
        shown = cli("quota", "--connection", str(path), "--json", cwd=tmp_path)
        text = cli("quota", "--connection", str(path), cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    state = json.loads(shown.stdout)
    assert [w["used"] for w in state["analyst"]["windows"]] == [2, 2]
    assert [w["cap"] for w in state["scheduled"]["windows"]] == [76, 1140]
    assert state["analyst"]["backend"] == "sqlite"
    assert "used 2, left 93" in text.stdout and "no 429 cooldown" in text.stdout


def test_back_to_back_runs_for_a_cached_ip_sign_in_once_and_call_once(tmp_path):
    from plugin.emulator import Emulator

    with Emulator() as emu:
        path = tmp_path / "connection.json"
        path.write_text(json.dumps(emu.connection(state_dir=str(tmp_path / "state"))))
        for _ in range(3):
            result = cli("run", "enrich_ip", "--connection", str(path), cwd=tmp_path, stdin=json.dumps({"ips": ["8.8.8.8"]}))
            assert result.returncode == 0, result.stderr
        assert len(emu.token_requests) == 1 and len(emu.stats_calls()) == 1
        assert json.loads(result.stdout)["records"][0]["cached"] is True


@pytest.mark.parametrize("args", [["-v", "enrich", "8.8.8.8", "--emulator"], ["enrich", "8.8.8.8", "--emulator", "-v"]])
def test_verbose_works_before_and_after_the_command_and_shows_no_token(tmp_path, args):
    result = cli(*args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "DEBUG" in result.stderr and "GET /api/ips/8.8.8.8/stats -> 200" in result.stderr
    assert re.search(r'access_token"?: "(?!\*\*\*")', result.stderr) is None
