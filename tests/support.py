"""Helpers shared by the tests: connection documents, a fake clock, a fake token provider."""

from __future__ import annotations

import datetime as dt

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

TENANT = "11111111-2222-3333-4444-555555555555"
CLIENT = "66666666-7777-8888-9999-000000000000"
SECRET = "s3cr3t-Value~for.tests_0123456789"


def connection_doc(**overrides) -> dict:
    """A minimal valid connection document for the global cloud, in-memory quota."""
    doc = {"tenant_id": TENANT, "client_id": CLIENT, "client_secret": SECRET, "quota": {"backend": "memory"}}
    doc.update(overrides)
    return doc


class FakeClock:
    """A monotonic clock tests move by hand; sleep() advances it instead of waiting."""

    def __init__(self, start: float = 1000.0):
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class FakeTokens:
    """Hands out numbered tokens; invalidate() makes the next token() a new one."""

    def __init__(self):
        self.issued = 0
        self.invalidated: list[str] = []

    def token(self) -> str:
        if self.issued == 0 or self._current in self.invalidated:
            self.issued += 1
        return self._current

    @property
    def _current(self) -> str:
        return f"token-{self.issued}"

    def invalidate(self, rejected: str) -> None:
        self.invalidated.append(rejected)


def make_certificate(tmp_path, kind: str, passphrase: bytes | None):
    """A self-signed app certificate as a PEM (key + cert) or PFX file: (path, cert PEM, key)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "defender-ip test app")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=1))
            .not_valid_after(now + dt.timedelta(days=1)).sign(key, hashes.SHA256()))
    encryption = (serialization.BestAvailableEncryption(passphrase) if passphrase else serialization.NoEncryption())
    path = tmp_path / f"app.{kind}"
    if kind == "pem":
        path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
                         + cert.public_bytes(serialization.Encoding.PEM))
    else:
        path.write_bytes(pkcs12.serialize_key_and_certificates(b"app", key, cert, None, encryption))
    return path, cert.public_bytes(serialization.Encoding.PEM), key
