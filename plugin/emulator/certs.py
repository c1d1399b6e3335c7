"""TLS material for the emulator: a throwaway CA and a loopback server certificate.

Both keys are EC P-256 so start-up stays in the milliseconds (RSA key generation would
dominate it). The server certificate names `localhost`, `127.0.0.1` and `::1`, and carries
the extensions strict verifiers insist on (key identifiers, critical basic constraints).
Also here: the certificate helpers the sign-in side needs (load, thumbprints, x5c).
"""

from __future__ import annotations

import base64
import datetime as _dt
import ipaddress
import os
import ssl
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_VALIDITY = _dt.timedelta(days=30)
_BACKDATE = _dt.timedelta(hours=1)  # tolerate a client clock slightly behind ours


@dataclass(frozen=True)
class TlsFiles:
    """Paths of the PEM files written for one emulator run."""

    ca_path: str
    cert_path: str
    key_path: str


def _name(common_name: str) -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "defender-ip emulator"),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
    ])


def _make_ca(now: _dt.datetime) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name("defender-ip emulator CA")
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _make_server_cert(
    ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate, now: _dt.datetime
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    sans = x509.SubjectAlternativeName([
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("::1")),
    ])
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("localhost"))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(sans, critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return key, cert


def _write(path: str, data: bytes) -> None:
    # 0600: the server key is only for this process; nobody else needs to read it.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def write_tls_files(directory: str) -> TlsFiles:
    """Create a CA and a loopback server certificate and write them as PEM into `directory`."""
    now = _dt.datetime.now(_dt.timezone.utc)
    ca_key, ca_cert = _make_ca(now)
    key, cert = _make_server_cert(ca_key, ca_cert, now)
    files = TlsFiles(
        ca_path=os.path.join(directory, "emulator-ca.pem"),
        cert_path=os.path.join(directory, "server.pem"),
        key_path=os.path.join(directory, "server.key"),
    )
    _write(files.ca_path, ca_cert.public_bytes(serialization.Encoding.PEM))
    _write(files.cert_path, cert.public_bytes(serialization.Encoding.PEM))
    _write(
        files.key_path,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
    return files


def server_context(files: TlsFiles) -> ssl.SSLContext:
    """A TLS 1.2+ server context serving the emulator's certificate."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(files.cert_path, files.key_path)
    return context


def load_certificate(pem_or_der: bytes | str) -> x509.Certificate:
    """Parse one certificate given as PEM (text or bytes) or DER bytes."""
    data = pem_or_der.encode() if isinstance(pem_or_der, str) else pem_or_der
    if b"-----BEGIN" in data:
        return x509.load_pem_x509_certificate(data)
    return x509.load_der_x509_certificate(data)


def b64url_thumbprints(cert: x509.Certificate) -> tuple[str, str]:
    """The (`x5t#S256`, `x5t`) header values of a certificate: base64url, unpadded."""
    def enc(digest: bytes) -> str:
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    return enc(cert.fingerprint(hashes.SHA256())), enc(cert.fingerprint(hashes.SHA1()))


def certificate_from_x5c(value: object) -> x509.Certificate | None:
    """The leaf certificate of a JWT `x5c` header (standard base64 DER), or None if unusable."""
    first = value[0] if isinstance(value, list) and value else value
    if not isinstance(first, str):
        return None
    try:
        # MSAL keeps the PEM line breaks inside the value; base64 ignores none, so drop them.
        der = base64.b64decode("".join(first.split()), validate=True)
        return x509.load_der_x509_certificate(der)
    except ValueError:
        return None
