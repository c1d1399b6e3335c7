"""Credentials never show: not in reprs, outputs, errors, exception chains, or debug logs.

(The fault matrix scans every fault at debug level for the client secret and the tokens;
these tests cover the other secrets: certificate passphrases, private keys, proxy passwords.)
"""

from __future__ import annotations

import json
import logging
import subprocess
import traceback

import pytest
from cryptography.hazmat.primitives import serialization
from support import SECRET, connection_doc, make_certificate
from test_cli import command

from plugin.config import load_connection
from plugin.emulator import Emulator
from plugin.errors import PluginError
from plugin.host import run_action

PASSPHRASE = "Pa55phrase-nobody-may-see"
PROXY_PASSWORD = "pr0xy-Passw0rd-nobody-may-see"


def key_fragments(key) -> list[str]:
    """Every base64 line of the private key, in the unencrypted form the plugin holds in memory."""
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return [line for line in pem.decode().splitlines() if not line.startswith("-----")]


def test_reprs_of_the_connection_hide_every_secret():
    conn = load_connection(connection_doc(proxy=f"http://user:{PROXY_PASSWORD}@127.0.0.1:3128"))
    text = repr(conn) + str(conn) + repr(conn.credential)
    assert SECRET not in text and PROXY_PASSWORD not in text


@pytest.mark.parametrize("kind", ["pem", "pfx"])
def test_a_certificate_credential_at_debug_level_leaves_no_key_or_passphrase(tmp_path, caplog, kind):
    caplog.set_level(logging.DEBUG)
    path, cert_pem, key = make_certificate(tmp_path, kind, PASSPHRASE.encode())
    with Emulator() as emu:
        emu.register_certificate(cert_pem)
        conn = emu.connection(client_secret=None, certificate_path=str(path), certificate_passphrase=PASSPHRASE,
                              quota={"backend": "memory"})
        out = run_action("enrich_ip", {"ips": ["10.209.67.177"]}, conn)
        conn_file = tmp_path / "connection.json"
        conn_file.write_text(json.dumps(conn))
        cli = subprocess.run([*command(), "-v", "enrich", "8.8.8.8", "--json", "--connection", str(conn_file)],
                             cwd=tmp_path, capture_output=True, text=True, timeout=60)
        tokens = emu.issued_tokens
    assert out["records"][0]["status"] == "enriched" and cli.returncode == 0, cli.stderr
    written = json.dumps(out) + caplog.text + cli.stdout + cli.stderr
    for secret in [PASSPHRASE, *key_fragments(key), *tokens]:
        assert secret not in written


def test_a_wrong_passphrase_error_and_its_chain_hold_no_secret(tmp_path):
    path, _, key = make_certificate(tmp_path, "pem", PASSPHRASE.encode())
    doc = connection_doc(client_secret=None, certificate_path=str(path), certificate_passphrase=PASSPHRASE + "x")
    with pytest.raises(PluginError) as caught:
        run_action("enrich_ip", {"ips": ["8.8.8.8"]}, doc)
    chain = "".join(traceback.format_exception(caught.value))
    for secret in [PASSPHRASE, *key_fragments(key)]:
        assert secret not in chain


def test_a_proxy_password_never_shows_when_the_proxy_fails(tmp_path):
    with Emulator() as emu:
        conn = emu.connection(proxy=f"http://user:{PROXY_PASSWORD}@127.0.0.1:9", quota={"backend": "memory"})
        conn_file = tmp_path / "connection.json"
        conn_file.write_text(json.dumps(conn))
        result = subprocess.run([*command(), "-v", "run", "enrich_ip", "--connection", str(conn_file)], cwd=tmp_path,
                                input=json.dumps({"ips": ["8.8.8.8"]}), capture_output=True, text=True, timeout=60)
    assert result.returncode == 3
    assert json.loads(result.stdout)["error"]["code"] == "service_unavailable"
    assert PROXY_PASSWORD not in result.stdout + result.stderr
    assert SECRET not in result.stdout + result.stderr


def test_a_failure_inside_requests_keeps_its_message_out_of_the_chain_shown():
    doc = connection_doc(api_base_url="https://127.0.0.1:9", authority_host="https://127.0.0.1:9")
    with pytest.raises(PluginError) as caught:
        run_action("enrich_ip", {"ips": ["8.8.8.8"]}, doc)
    shown = "".join(traceback.format_exception(caught.value))
    assert caught.value.code == "service_unavailable"
    assert SECRET not in shown and "Max retries" not in shown  # `from None`: requests' own text is not shown
