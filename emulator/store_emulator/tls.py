"""A certificate authority of one's own and a certificate for this machine, for https on loopback.

A production rehearsal runs the gateway and the emulator over https, as production does, without a
public certificate: clients trust the local authority through ``REQUESTS_CA_BUNDLE``. The authority's
private key is never written anywhere, so nothing else can ever be signed with it.

    python -m store_emulator.tls DIR    # writes DIR/ca.pem, DIR/localhost.pem, DIR/localhost-key.pem
"""
from __future__ import annotations

import ipaddress
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

NAMES = ("localhost",)
ADDRESSES = ("127.0.0.1", "::1")
VALID_DAYS = 7


@dataclass(frozen=True)
class LocalTLS:
    ca: Path  # what clients trust (REQUESTS_CA_BUNDLE)
    certificate: Path  # what a server presents (gunicorn --certfile)
    key: Path  # its private key (gunicorn --keyfile)


def make_local_tls(directory: Path) -> LocalTLS:
    """A fresh authority and a server certificate for localhost, 127.0.0.1 and ::1, valid for a week."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = _authority(ca_key)
    server = _server_certificate(server_key, ca, ca_key)
    tls = LocalTLS(directory / "ca.pem", directory / "localhost.pem", directory / "localhost-key.pem")
    tls.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    tls.certificate.write_bytes(server.public_bytes(serialization.Encoding.PEM))
    tls.key.touch(mode=0o600)
    tls.key.chmod(0o600)  # also when the file was there before
    tls.key.write_bytes(server_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                 serialization.NoEncryption()))
    return tls


def _authority(key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "3dcart store emulator local CA")])
    return (_builder(name, name, key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_usage(cert_sign=True), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))


def _server_certificate(key: ec.EllipticCurvePrivateKey, ca: x509.Certificate,
                        ca_key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    names = [x509.DNSName(name) for name in NAMES] + [x509.IPAddress(ipaddress.ip_address(a)) for a in ADDRESSES]
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, NAMES[0])])
    return (_builder(subject, ca.subject, key.public_key())
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_usage(cert_sign=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))


def _builder(subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey) -> x509.CertificateBuilder:
    now = datetime.now(timezone.utc)
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=VALID_DAYS)))


def _usage(cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature=not cert_sign, content_commitment=False, key_encipherment=False,
                         data_encipherment=False, key_agreement=False, key_cert_sign=cert_sign, crl_sign=cert_sign,
                         encipher_only=False, decipher_only=False)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m store_emulator.tls DIR", file=sys.stderr)
        return 2
    tls = make_local_tls(Path(argv[0]))
    print(f"export REQUESTS_CA_BUNDLE={tls.ca}\n# serve with: --certfile {tls.certificate} --keyfile {tls.key}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
