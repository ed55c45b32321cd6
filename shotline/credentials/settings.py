"""The content-credential settings (SHOTLINE_C2PA*), as read from the environment, with nothing checked yet:
`keys` checks them (and says which variable is wrong)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, ConfigDict, SecretStr

SWITCH_VAR = "SHOTLINE_C2PA"
CERT_VAR = "SHOTLINE_C2PA_CERT"
KEY_VAR = "SHOTLINE_C2PA_KEY"
KEY_PEM_VAR = "SHOTLINE_C2PA_KEY_PEM"
TSA_VAR = "SHOTLINE_C2PA_TSA_URL"
TRUST_VAR = "SHOTLINE_C2PA_TRUST_ANCHORS"

_ON, _OFF = {"", "on", "1", "true", "yes"}, {"off", "0", "false", "no"}


class CredentialSettings(BaseModel):
    """Who signs and what verification trusts. No certificate and no key: the development chain under `home`."""

    model_config = ConfigDict(frozen=True)

    enabled: bool = True
    home: Path = Path("./.shotline")
    cert: Path | None = None  # PEM chain, signing certificate first
    cert_pem: str | None = None  # or the chain itself: SHOTLINE_C2PA_CERT holding PEM text (from a secret)
    key: Path | None = None  # PEM private key file
    key_pem: SecretStr | None = None  # or the key itself, from a secret in the environment
    tsa_url: str | None = None
    trust_anchors: Path | None = None  # PEM roots trusted besides the SDK's default list

    @property
    def configured(self) -> bool:
        """Whether a certificate or key is set (else the development chain is used)."""
        return any(v is not None for v in (self.cert, self.cert_pem, self.key, self.key_pem))

    @classmethod
    def from_env(cls, env: Mapping[str, str], home: Path) -> CredentialSettings:
        def path(name: str) -> Path | None:
            raw = (env.get(name) or "").strip()
            return Path(raw).expanduser() if raw else None

        pem = env.get(KEY_PEM_VAR) or ""
        cert_text = (env.get(CERT_VAR) or "").strip()
        inline_cert = cert_text.startswith("-----BEGIN")  # a chain passed as text, e.g. from a k8s Secret
        return cls(
            enabled=switch(env.get(SWITCH_VAR)),
            home=home,
            cert=None if inline_cert else path(CERT_VAR),
            cert_pem=cert_text if inline_cert else None,
            key=path(KEY_VAR),
            key_pem=SecretStr(pem) if pem.strip() else None,
            tsa_url=(env.get(TSA_VAR) or "").strip() or None,
            trust_anchors=path(TRUST_VAR),
        )


def switch(raw: str | None) -> bool:
    """SHOTLINE_C2PA: on (the default) or off."""
    value = (raw or "").strip().lower()
    if value in _ON:
        return True
    if value in _OFF:
        return False
    raise ValueError(f"{SWITCH_VAR} must be 'on' or 'off', not {raw!r}")
