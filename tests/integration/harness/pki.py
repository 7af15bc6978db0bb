"""Throwaway keys and certificates for the test registries.

Two independent trust roots are made, because the registry uses them for different jobs:

* a CA plus a server certificate for ``127.0.0.1``/``localhost``, so a registry can serve
  HTTPS and clients can verify it with ``ca_path`` (the certificate carries both an IP and
  a DNS subjectAltName: Go and Python ignore the CN);
* a self-signed RSA certificate for the token service. distribution verifies a JWT by
  checking the certificate in its ``x5c`` header against ``auth.token.rootcertbundle``;
  a self-signed certificate placed in that bundle is its own root.

Everything is written as PEM files into a directory the caller owns (and removes).
"""
from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# Long enough for any test run, short enough that a leaked file is useless.
VALIDITY = datetime.timedelta(days=2)


@dataclass(frozen=True)
class ServerTLS:
    """PEM paths for an HTTPS server and the CA that clients must trust."""

    ca_path: Path
    cert_path: Path
    key_path: Path


@dataclass(frozen=True)
class TokenSigner:
    """The token service's signing key and its self-signed certificate (PEM paths)."""

    key_path: Path
    cert_path: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "archfleet test suite"),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
    ])


def _validity(builder: x509.CertificateBuilder) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.timezone.utc)
    # Backdated a little so a registry whose clock is a few seconds behind accepts it.
    return builder.not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + VALIDITY)


def _write_key(path: Path, key) -> None:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    path.chmod(0o600)


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _make_ca(common_name: str, key_usage: bool) -> tuple[ec.EllipticCurvePrivateKey, x509.Name, x509.Certificate]:
    """A self-signed P-256 CA that signs end-entity certificates only (path length 0): key, name, certificate.

    With ``key_usage`` it also states its key usage (certificate and CRL signing, critical) and a
    subject key identifier, as the server CA always has; the client CA has been without both.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(common_name)
    builder = (
        _validity(x509.CertificateBuilder())
        .subject_name(name).issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
    )
    if key_usage:
        builder = (
            builder
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=True, crl_sign=True,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        )
    return key, name, builder.sign(key, hashes.SHA256())


def make_server_tls(directory: Path | str, hosts: tuple[str, ...] = ("127.0.0.1", "localhost")) -> ServerTLS:
    """Create a CA and a server certificate valid for ``hosts``; write ca.pem, server.pem, server-key.pem."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)

    ca_key, ca_name, ca_cert = _make_ca("archfleet test CA", key_usage=True)

    sans: list[x509.GeneralName] = []
    for host in hosts:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            sans.append(x509.DNSName(host))
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = (
        _validity(x509.CertificateBuilder())
        .subject_name(_name(hosts[0])).issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    files = ServerTLS(directory / "ca.pem", directory / "server.pem", directory / "server-key.pem")
    _write_cert(files.ca_path, ca_cert)
    _write_cert(files.cert_path, server_cert)
    _write_key(files.key_path, server_key)
    return files


def make_token_signer(directory: Path | str) -> TokenSigner:
    """Create an RSA key and a self-signed certificate for RS256 JWTs; write token-key.pem, token.pem."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = _name("archfleet test token issuer")
    cert = (
        _validity(x509.CertificateBuilder())
        .subject_name(name).issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    files = TokenSigner(directory / "token-key.pem", directory / "token.pem")
    _write_key(files.key_path, key)
    _write_cert(files.cert_path, cert)
    return files


@dataclass(frozen=True)
class ClientTLS:
    """A client-certificate CA (for the server's ``clientcas``) and one client pair it signed (PEM paths)."""

    ca_path: Path
    cert_path: Path
    key_path: Path


def make_client_tls(directory: Path | str, common_name: str = "archfleet ci client") -> ClientTLS:
    """Create a client CA and a client certificate (extended key usage clientAuth); write client-*.pem."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca_name, ca_cert = _make_ca("archfleet test client CA", key_usage=False)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        _validity(x509.CertificateBuilder())
        .subject_name(_name(common_name)).issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    files = ClientTLS(directory / "client-ca.pem", directory / "client.pem", directory / "client-key.pem")
    _write_cert(files.ca_path, ca_cert)
    _write_cert(files.cert_path, cert)
    _write_key(files.key_path, key)
    return files
