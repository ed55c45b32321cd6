"""The signing chain: loaded from SHOTLINE_C2PA_CERT and SHOTLINE_C2PA_KEY (or SHOTLINE_C2PA_KEY_PEM) and held
to what the C2PA SDK accepts, or, with none of them set, the development chain made once under SHOTLINE_HOME.

What the signing certificate needs (the SDK refuses each one missing): X.509 v3, valid now, an EC P-256/384/521
or RSA >= 2048 key, KeyUsage digitalSignature, an ExtendedKeyUsage with emailProtection, an
AuthorityKeyIdentifier, and an issuer other than itself. Each failure is a ConfigError naming the variable and
the reason; no message ever carries the key.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Literal, TypeVar
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pydantic import BaseModel, ConfigDict, SecretStr

from shotline.credentials.settings import CERT_VAR, KEY_PEM_VAR, KEY_VAR, TRUST_VAR, TSA_VAR, CredentialSettings
from shotline.errors import ConfigError

_Ext = TypeVar("_Ext", bound=x509.ExtensionType)

Alg = Literal["es256", "es384", "es512", "ps256"]

# The development chain's names say what it is wherever a reader shows the signer.
DEV_ROOT_NAME = "shotline DEVELOPMENT ROOT - untrusted"
DEV_SIGNER_NAME = "shotline development signer"
DEV_FOLDER = Path("credentials") / "development"
DEV_FILES = ("chain.pem", "key.pem", "root.pem")
_DEV_ROOT_DAYS, _DEV_SIGNER_DAYS = 20 * 365, 10 * 365
_CURVES: dict[str, Alg] = {"secp256r1": "es256", "secp384r1": "es384", "secp521r1": "es512"}
_Refuse = Callable[[str], ConfigError]


class SigningKeys(BaseModel):
    """A checked signing chain and its key, ready for the SDK (PEM, signing certificate first, PKCS#8 key)."""

    model_config = ConfigDict(frozen=True)

    chain_pem: str
    key_pem: SecretStr
    alg: Alg
    tsa_url: str | None
    development: bool
    origin: str  # where it came from, for people
    subject: str  # the signing certificate's common name
    issuer: str
    serial: str  # decimal, as C2PA readers show it
    fingerprint: str  # sha256 of the signing certificate (DER)
    not_after: dt.datetime
    root_path: Path | None = None  # the development root, to trust it on this machine

    def identity(self) -> dict[str, str | None]:
        """What a signed file depends on besides its content: which certificate signed it, and the TSA."""
        return {"signer": self.fingerprint, "tsa": self.tsa_url}

    def describe(self) -> str:
        who = f"{self.subject} (issued by {self.issuer}, serial {self.serial}, {self.alg.upper()})"
        if self.development:
            return (
                f"the DEVELOPMENT chain under SHOTLINE_HOME: {who}; its root is trusted nowhere unless "
                f"{TRUST_VAR} names it"
            )
        stamp = f", timestamps from {self.tsa_url}" if self.tsa_url else ", no timestamp authority"
        return f"{who} from {self.origin}{stamp}"


class DevelopmentChain(BaseModel):
    chain: Path
    key: Path
    root: Path


class GeneratedChain(BaseModel):
    """A root CA and a signing certificate it issued, as PEM: the shape C2PA wants."""

    root_pem: bytes
    chain_pem: bytes  # signing certificate, then the root
    key_pem: bytes  # the signing key, PKCS#8


def load_signing_keys(settings: CredentialSettings, *, now: dt.datetime | None = None) -> SigningKeys | None:
    """The keys signing uses (None when SHOTLINE_C2PA=off); ConfigError naming the variable when they cannot
    work. With no certificate and no key set, the development chain (made under `settings.home` if needed)."""
    if not settings.enabled:
        return None
    tsa = check_tsa_url(settings.tsa_url)
    if not settings.configured:
        dev = development_chain(settings.home)
        where = f"the development chain under SHOTLINE_HOME ({dev.chain.parent})"
        chain = _read(dev.chain, "SHOTLINE_HOME", f"{where}: chain.pem")
        key = _read(dev.key, "SHOTLINE_HOME", f"{where}: key.pem")
        keys = check_chain(chain, key, cert_var="SHOTLINE_HOME", key_var="SHOTLINE_HOME", tsa_url=tsa, now=now)
        return keys.model_copy(update={"development": True, "origin": where, "root_path": dev.root})
    if settings.cert is None and settings.cert_pem is None:
        given = KEY_VAR if settings.key is not None else KEY_PEM_VAR
        raise ConfigError(
            f"{CERT_VAR} is not set but {given} is: set both, or neither for the development chain", field=CERT_VAR
        )
    if settings.key is None and settings.key_pem is None:
        raise ConfigError(f"{KEY_VAR} is not set but {CERT_VAR} is: set the key file (or {KEY_PEM_VAR})", field=KEY_VAR)
    if settings.key is not None and settings.key_pem is not None:
        raise ConfigError(f"both {KEY_VAR} and {KEY_PEM_VAR} are set: set one", field=KEY_PEM_VAR)
    if settings.cert_pem is not None:
        chain, shown = settings.cert_pem.encode(), "inline PEM"
    else:
        assert settings.cert is not None
        chain, shown = _read(settings.cert, CERT_VAR, f"{CERT_VAR} ({settings.cert})"), settings.cert.name
    if settings.key is not None:
        key, key_var = _read(settings.key, KEY_VAR, f"{KEY_VAR} ({settings.key})"), KEY_VAR
    else:
        assert settings.key_pem is not None
        key, key_var = settings.key_pem.get_secret_value().encode(), KEY_PEM_VAR
    keys = check_chain(chain, key, cert_var=CERT_VAR, key_var=key_var, tsa_url=tsa, now=now)
    return keys.model_copy(update={"origin": f"{CERT_VAR} ({shown})"})


def check_configured(settings: CredentialSettings) -> None:
    """What can be checked without side effects, for start-up (loading the Dagster definitions): a configured
    chain and key, the TSA URL and the trust anchors. ConfigError naming the variable. The development chain
    is left to be made when first used."""
    load_trust_anchors(settings)
    if settings.enabled and settings.configured:
        load_signing_keys(settings)
    elif settings.enabled:
        check_tsa_url(settings.tsa_url)


def load_trust_anchors(settings: CredentialSettings) -> str | None:
    """The PEM roots verification trusts besides the SDK's list (SHOTLINE_C2PA_TRUST_ANCHORS), checked."""
    if settings.trust_anchors is None:
        return None
    data = _read(settings.trust_anchors, TRUST_VAR, f"{TRUST_VAR} ({settings.trust_anchors})")
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError:
        raise ConfigError(f"{TRUST_VAR}: {settings.trust_anchors} holds no PEM certificate", field=TRUST_VAR) from None
    return "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in certs)


def check_tsa_url(url: str | None) -> str | None:
    if url is None:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"{TSA_VAR}: {url!r} is not an http(s) URL of a timestamp authority", field=TSA_VAR)
    return url


def check_chain(
    chain_pem: bytes,
    key_pem: bytes,
    *,
    cert_var: str,
    key_var: str,
    tsa_url: str | None = None,
    now: dt.datetime | None = None,
) -> SigningKeys:
    """Hold a PEM chain and its key to what C2PA signing needs; ConfigError (naming the variable) if not."""
    now = now or dt.datetime.now(dt.UTC)

    def refuse(variable: str, reason: str) -> ConfigError:
        return ConfigError(f"{variable}: {reason}", field=variable)

    try:
        certs = x509.load_pem_x509_certificates(chain_pem)
    except ValueError:
        raise refuse(cert_var, "holds no PEM certificate") from None
    leaf = certs[0]
    alg = _check_signing_certificate(leaf, now, lambda reason: refuse(cert_var, reason))
    for i, (cert, issuer) in enumerate(itertools.pairwise(certs), start=1):
        try:
            cert.verify_directly_issued_by(issuer)
        except (ValueError, TypeError, InvalidSignature):
            order = "put the signing certificate first, then each issuer in turn"
            raise refuse(cert_var, f"certificate {i + 1} of the chain did not issue certificate {i}: {order}") from None
        if not issuer.not_valid_before_utc <= now <= issuer.not_valid_after_utc:
            valid = f"valid {_day(issuer.not_valid_before_utc)} to {_day(issuer.not_valid_after_utc)}"
            which = f"certificate {i + 1} of the chain ({_name(issuer.subject)})"
            raise refuse(cert_var, f"{which} is not valid now ({valid})")
    key = _load_key(key_pem, lambda reason: refuse(key_var, reason))
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(*spki) != leaf.public_key().public_bytes(*spki):
        raise refuse(key_var, f"the key does not match the signing certificate in {cert_var} ({_name(leaf.subject)})")
    pkcs8 = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return SigningKeys(
        chain_pem="".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in certs),
        key_pem=SecretStr(pkcs8.decode()),
        alg=alg,
        tsa_url=tsa_url,
        development=False,
        origin=cert_var,
        subject=_name(leaf.subject),
        issuer=_name(leaf.issuer),
        serial=str(leaf.serial_number),
        fingerprint=hashlib.sha256(leaf.public_bytes(serialization.Encoding.DER)).hexdigest(),
        not_after=leaf.not_valid_after_utc,
    )


def _check_signing_certificate(leaf: x509.Certificate, now: dt.datetime, refuse: _Refuse) -> Alg:
    if leaf.version != x509.Version.v3:
        raise refuse("the signing certificate is not X.509 v3")
    if now > leaf.not_valid_after_utc:
        raise refuse(f"the signing certificate expired on {_day(leaf.not_valid_after_utc)}")
    if now < leaf.not_valid_before_utc:
        raise refuse(f"the signing certificate is not valid before {_day(leaf.not_valid_before_utc)}")
    if leaf.issuer == leaf.subject:
        raise refuse("the signing certificate is self-signed, which C2PA refuses: issue it from a CA certificate")
    constraints = _extension(leaf, x509.BasicConstraints)
    if constraints is not None and constraints.ca:
        raise refuse("the first certificate is a CA certificate: put the signing (end-entity) certificate first")
    usage = _extension(leaf, x509.KeyUsage)
    if usage is None or not usage.digital_signature:
        raise refuse("the signing certificate's KeyUsage lacks digitalSignature")
    extended = _extension(leaf, x509.ExtendedKeyUsage)
    if extended is None or ExtendedKeyUsageOID.EMAIL_PROTECTION not in extended:
        raise refuse(
            "the signing certificate's ExtendedKeyUsage lacks emailProtection (C2PA refuses none, "
            "anyExtendedKeyUsage, serverAuth and codeSigning)"
        )
    if _extension(leaf, x509.AuthorityKeyIdentifier) is None:
        raise refuse("the signing certificate has no AuthorityKeyIdentifier")
    public = leaf.public_key()
    if isinstance(public, ec.EllipticCurvePublicKey):
        alg = _CURVES.get(public.curve.name)
        if alg is None:
            raise refuse(f"EC curve {public.curve.name} is not one C2PA signs with (P-256, P-384, P-521)")
        return alg
    if isinstance(public, rsa.RSAPublicKey):
        if public.key_size < 2048:
            raise refuse(f"an RSA key of {public.key_size} bits is too short (at least 2048)")
        return "ps256"
    raise refuse(f"a {type(public).__name__} key: use EC P-256/384/521 or RSA >= 2048")


def _load_key(data: bytes, refuse: _Refuse) -> ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey:
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise refuse("the key is encrypted: give it unencrypted (keep it in a secret store)") from None
    except (ValueError, UnsupportedAlgorithm):
        raise refuse("holds no PEM private key") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise refuse(f"a {type(key).__name__}: use an EC or RSA key")
    return key


def _extension(cert: x509.Certificate, kind: type[_Ext]) -> _Ext | None:
    try:
        return cert.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


def _read(path: Path, variable: str, what: str) -> bytes:
    if not path.exists():
        raise ConfigError(f"{what} does not exist", field=variable)
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{what} cannot be read: {exc.strerror or exc}", field=variable) from None


def _name(name: x509.Name) -> str:
    for oid in (NameOID.COMMON_NAME, NameOID.ORGANIZATION_NAME):
        found = name.get_attributes_for_oid(oid)
        if found:
            return str(found[0].value)
    return name.rfc4514_string()


def _day(when: dt.datetime) -> str:
    return when.strftime("%Y-%m-%d")


# --- the development chain -------------------------------------------------------------------------------


def development_chain(home: Path) -> DevelopmentChain:
    """The development chain under `home`, made the first time. Two processes racing both end up with the same
    one: each writes a private folder and renames it into place, and the loser uses the winner's."""
    folder = Path(home) / DEV_FOLDER
    found = DevelopmentChain(chain=folder / "chain.pem", key=folder / "key.pem", root=folder / "root.pem")
    if folder.is_dir():
        return _complete(found, folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".development-", dir=folder.parent))  # 0700: it holds a key
    try:
        made = make_chain(DEV_ROOT_NAME, DEV_SIGNER_NAME, root_days=_DEV_ROOT_DAYS, signer_days=_DEV_SIGNER_DAYS)
        (staging / "root.pem").write_bytes(made.root_pem)
        (staging / "chain.pem").write_bytes(made.chain_pem)
        fd = os.open(staging / "key.pem", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(made.key_pem)
        (staging / "README.txt").write_text(_DEV_README)
        try:
            os.rename(staging, folder)
        except OSError:
            if not folder.is_dir():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return _complete(found, folder)


def _complete(found: DevelopmentChain, folder: Path) -> DevelopmentChain:
    missing = [name for name in DEV_FILES if not (folder / name).is_file()]
    if missing:
        raise ConfigError(
            f"SHOTLINE_HOME: the development chain in {folder} is incomplete (no {', '.join(missing)}): remove "
            "that folder and a new one is made",
            field="SHOTLINE_HOME",
        )
    return found


_DEV_README = f"""A DEVELOPMENT certificate chain, made by shotline because no {CERT_VAR} / {KEY_VAR} was set.

Files signed with it say who made them, but nobody trusts this root: readers report them as valid with an
untrusted signer. To trust it on this machine only, set {TRUST_VAR} to root.pem here. For files you publish,
configure a certificate from a C2PA-trusted CA ({CERT_VAR}, {KEY_VAR}, {TSA_VAR}).
"""


def make_chain(root_name: str, signer_name: str, *, root_days: int, signer_days: int) -> GeneratedChain:
    """A root CA (EC P-256) and a signing certificate issued by it with the usages C2PA requires."""
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)  # a little slack for clocks that disagree
    root_key = ec.generate_private_key(ec.SECP256R1())
    root_subject = x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, root_name), x509.NameAttribute(NameOID.ORGANIZATION_NAME, root_name)]
    )
    root = (
        x509.CertificateBuilder()
        .subject_name(root_subject)
        .issuer_name(root_subject)
        .public_key(root_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=root_days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()), critical=False)
        .sign(root_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    signer = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.COMMON_NAME, signer_name),
                    # C2PA readers show the signer's organisation as "issuer": it names the root it chains to
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, root_name),
                ]
            )
        )
        .issuer_name(root_subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=min(signer_days, root_days)))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), critical=False)
        .sign(root_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    return GeneratedChain(
        root_pem=root.public_bytes(pem),
        chain_pem=signer.public_bytes(pem) + root.public_bytes(pem),
        key_pem=key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
    )


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )
