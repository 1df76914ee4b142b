"""Certificates for a local control plane: one CA per cluster, a serving cert, client certs.

Pure functions over `cryptography`: nothing here touches the disk. ECDSA P-256 keys keep
generation fast (milliseconds), so every cluster gets its own CA, and a client of one cluster is
never trusted by another. The service-account signing key is a separate key pair.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["CertPair", "ClusterPki", "issue_cluster_pki"]

_VALIDITY = datetime.timedelta(days=365)


@dataclass(frozen=True)
class CertPair:
    """A PEM certificate and its PEM private key."""

    cert_pem: bytes
    key_pem: bytes


@dataclass(frozen=True)
class ClusterPki:
    """Everything one cluster needs: its CA, the apiserver's serving cert, an admin client cert
    (group ``system:masters``) and the service-account signing key pair."""

    ca: CertPair
    serving: CertPair
    admin: CertPair
    service_account_key_pem: bytes
    service_account_pub_pem: bytes


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _name(common_name: str, organization: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attrs)


def _builder(
    subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey
) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
    )


def _leaf(
    *,
    ca_key: ec.EllipticCurvePrivateKey,
    ca_name: x509.Name,
    subject: x509.Name,
    usage: x509.ObjectIdentifier,
    sans: list[x509.GeneralName] | None = None,
) -> CertPair:
    key = _key()
    builder = (
        _builder(subject, ca_name, key.public_key())
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    return CertPair(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def issue_cluster_pki(cluster: str, *, hosts: list[str]) -> ClusterPki:
    """Issue a fresh CA for `cluster` and the certificates signed by it.

    `hosts` are the names and IP addresses the apiserver is reached at (its serving cert's SANs).
    """
    ca_key = _key()
    ca_name = _name(f"fleet-kit-ca-{cluster}")
    ca_cert = (
        _builder(ca_name, ca_name, ca_key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    sans: list[x509.GeneralName] = []
    for host in hosts:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            sans.append(x509.DNSName(host))
    serving = _leaf(
        ca_key=ca_key,
        ca_name=ca_name,
        subject=_name("kube-apiserver"),
        usage=ExtendedKeyUsageOID.SERVER_AUTH,
        sans=sans,
    )
    admin = _leaf(
        ca_key=ca_key,
        ca_name=ca_name,
        subject=_name("fleet-kit-admin", "system:masters"),
        usage=ExtendedKeyUsageOID.CLIENT_AUTH,
    )
    sa_key = _key()
    return ClusterPki(
        ca=CertPair(ca_cert.public_bytes(serialization.Encoding.PEM), _key_pem(ca_key)),
        serving=serving,
        admin=admin,
        service_account_key_pem=_key_pem(sa_key),
        service_account_pub_pem=sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
    )
