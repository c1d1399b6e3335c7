"""Offline emulator of Microsoft Defender for Endpoint's IP stats API and Entra ID sign-in.

Real HTTPS on loopback with a CA created at start (`emu.ca_path`), OpenID discovery and a
client-credentials token endpoint that MSAL uses unchanged, `GET /api/ips/{ip}/stats` with
bearer checks, per-app rate limits with 429 + Retry-After, and deterministic data per IP
(rules in `plugin.emulator.data`). Typical use::

    with Emulator(limits=[(3, 1)]) as emu:
        emu.script("10.0.0.1", [Answer(status=503)])
        run_action("enrich_ip", {"ips": ["10.0.0.1"]}, emu.connection())
        assert emu.count(status=503) == 1

Faults (`plugin.emulator.faults`): `Answer(fault="reset" | "reset_mid_body" | "stall")`,
ready-made answers (`faults.throttled("86400")`, `faults.token_expired_secret()`...),
global scripts (`emu.script_all`, `emu.script_all_forever`), per-IP forever scripts
(`emu.script_forever`), `emu.clear_scripts()` and `emu.expire_tokens()`; see `core` for
the order of checks.
"""

from plugin.emulator import faults
from plugin.emulator.core import DEFAULT_CLIENT_ID, DEFAULT_SCOPE, DEFAULT_TENANT_ID, Emulator, SeenRequest
from plugin.emulator.scripting import Answer
from plugin.emulator.serve import serve

__all__ = ["Answer", "DEFAULT_CLIENT_ID", "DEFAULT_SCOPE", "DEFAULT_TENANT_ID", "Emulator", "SeenRequest", "faults",
           "serve"]
