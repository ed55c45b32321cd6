"""Certificate chains made by the tests themselves (not by shotline's code under test): a good one, and ones
broken in each way C2PA refuses."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

PEM = serialization.Encoding.PEM


@dataclass(frozen=True)
class Chain:
    cert: Path  # signing certificate, then the root
    key: Path
    root: Path
    key_pem: str

    def env(self) -> dict[str, str]:
        return {"SHOTLINE_C2PA_CERT": str(self.cert), "SHOTLINE_C2PA_KEY": str(self.key)}


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, common_name), x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Tests")]
    )


def _usage(*, sign: bool, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def make_chain(
    folder: Path,
    *,
    name: str = "shotline test signer",
    expired: bool = False,
    eku: x509.ObjectIdentifier | None = ExtendedKeyUsageOID.EMAIL_PROTECTION,
    digital_signature: bool = True,
    aki: bool = True,
    self_signed: bool = False,
    other_key: bool = False,
) -> Chain:
    """Write cert.pem (signer + root), key.pem and root.pem into `folder`. The keyword arguments break it."""
    folder.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    root_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    root = (
        x509.CertificateBuilder()
        .subject_name(_name(f"{name} root"))
        .issuer_name(_name(f"{name} root"))
        .public_key(root_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=30))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_usage(sign=False, ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()), critical=False)
        .sign(root_key, hashes.SHA256())
    )
    end = now - dt.timedelta(days=1) if expired else now + dt.timedelta(days=365)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(name))
        .issuer_name(_name(name) if self_signed else root.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=10))
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_usage(sign=digital_signature, ca=False), critical=True)
    )
    if eku is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage([eku]), critical=False)
    if aki:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), critical=False
        )
    cert = builder.sign(key if self_signed else root_key, hashes.SHA256())
    given = ec.generate_private_key(ec.SECP256R1()) if other_key else key
    key_pem = given.private_bytes(PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    chain = Chain(cert=folder / "cert.pem", key=folder / "key.pem", root=folder / "root.pem", key_pem=key_pem.decode())
    chain.cert.write_bytes(cert.public_bytes(PEM) + (b"" if self_signed else root.public_bytes(PEM)))
    chain.key.write_bytes(key_pem)
    chain.root.write_bytes(root.public_bytes(PEM))
    return chain
