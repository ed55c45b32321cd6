"""Upload local images to fal storage (https://fal.ai/docs/documentation/model-apis/fal-cdn), check an uploaded URL.

The flow is fal_client's: a CDN token from the REST host (`Key` auth, cached until it expires), then the raw
bytes to the configured CDN host with that token; if either step fails, fal-js's pair instead: initiate on
the REST host (`Key` auth) and PUT the bytes to the presigned URL it returns (no auth). Each call is retried
a few times on transport errors, 408, 429 and 5xx; a retried upload may leave a duplicate object (harmless).

The presigned PUT and `is_serving` go to URLs fal handed back, so they go through netguard: public hosts, the
configured REST and CDN origins, or what SHOTLINE_ALLOW_HOSTS allows. The key and the token never appear in a
message, a log line or a repr.
"""

from __future__ import annotations

import base64
import json
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, TypeVar

import httpx
from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError

from shotline.errors import UrlRefused
from shotline.fal._http import USER_AGENT, FalHttpClient, Retry, detail_of
from shotline.fal.errors import FalAuthError, FalError
from shotline.fal.retry import is_transient_status
from shotline.netguard import UrlPolicy, guarded_client, redact

DATA_URI_MAX_BYTES = 4096  # a data URI only for tiny images: fal advises against them above a few KB
STORAGE_TYPE = "fal-cdn-v3"
DEFAULT_TIMEOUT = httpx.Timeout(120.0, connect=30.0)
# a token this close to its expiry is not used: an upload started with it could arrive after it expired
TOKEN_MARGIN = timedelta(seconds=60)
_SERVING = frozenset({200, 206, 416})  # 416: a zero-byte object has no byte 0, but it is there
_GONE = frozenset({401, 403, 404, 410})

SleepFn = Callable[[float], None]
NowFn = Callable[[], datetime]
Auth = Literal["key", "token", "presigned"]
M = TypeVar("M", bound=BaseModel)


def data_uri(data: bytes, mime: str) -> str:
    """`data:<mime>;base64,...`: for images of at most DATA_URI_MAX_BYTES; upload anything larger."""
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


class FalStorageError(FalError):
    """An upload to fal storage, or the check of an uploaded URL, failed."""


class _CdnToken(BaseModel):
    model_config = ConfigDict(extra="ignore")

    token: SecretStr
    token_type: str = "Bearer"
    base_url: str | None = None
    expires_at: datetime | None = None


class _Initiated(BaseModel):
    model_config = ConfigDict(extra="ignore")

    upload_url: str
    file_url: str


class FalStorage(FalHttpClient):
    """fal's storage hosts, over httpx. Use as a context manager (or call `close()`). Thread-safe."""

    logger = logging.getLogger("shotline.fal.storage")

    def __init__(
        self,
        rest_url: str,
        cdn_url: str,
        key: SecretStr,
        *,
        transport: httpx.BaseTransport | None = None,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        policy: UrlPolicy | None = None,
        max_attempts: int = 3,
        backoff_base: float = 0.5,
        backoff_cap: float = 8.0,
        sleep: SleepFn = time.sleep,
        now: NowFn = lambda: datetime.now(UTC),
        rng: random.Random | None = None,
    ) -> None:
        super().__init__(
            key,
            transport=transport,
            timeout=timeout,
            max_attempts=max_attempts,
            backoff_base=backoff_base,
            backoff_cap=backoff_cap,
            sleep=sleep,
            rng=rng,
        )
        self.rest_url = rest_url.rstrip("/")
        self.cdn_url = cdn_url.rstrip("/")
        self._now = now
        self._token: _CdnToken | None = None
        self._token_lock = threading.Lock()
        # netguard: presigned upload URLs and uploaded files are fal's answers, checked on every hop
        policy = (policy or UrlPolicy.from_env()).trusting(self.rest_url).trusting(self.cdn_url)
        self._guarded = guarded_client(policy, timeout=timeout, headers={"User-Agent": USER_AGENT})

    def __repr__(self) -> str:
        return f"FalStorage(rest_url={self.rest_url!r}, cdn_url={self.cdn_url!r}, key=SecretStr('**********'))"

    def close(self) -> None:
        super().close()
        self._guarded.close()

    # -- uploads ----------------------------------------------------------------------------------------

    def upload(self, data: bytes, content_type: str, file_name: str, *, expires_in_s: int | None = None) -> str:
        """Store `data` on fal's CDN and return its public URL. `expires_in_s`: ask fal to delete it then."""
        lifecycle = _lifecycle_headers(expires_in_s)
        try:
            return self._upload_with_token(data, content_type, file_name, lifecycle)
        except FalError as primary:
            self.logger.info("fal storage: the CDN token upload failed (%s); trying initiate + PUT", primary)
            try:
                return self._upload_initiated(data, content_type, file_name, lifecycle)
            except FalError as fallback:
                message = (
                    f"fal storage: upload of {file_name!r} ({len(data):,} bytes) failed both ways. "
                    f"CDN token upload: {primary}. Initiate + PUT: {fallback}"
                )
                if isinstance(fallback, FalAuthError) and fallback.status_code is not None:
                    raise FalAuthError(message, status_code=fallback.status_code, detail=fallback.detail) from fallback
                raise FalStorageError(
                    message, retryable=fallback.retryable, status_code=fallback.status_code, detail=fallback.detail
                ) from fallback

    def _upload_with_token(self, data: bytes, content_type: str, file_name: str, lifecycle: Mapping[str, str]) -> str:
        token = self._cdn_token()
        headers = {
            "Authorization": f"{token.token_type} {token.token.get_secret_value()}",
            "Content-Type": content_type,
            "X-Fal-File-Name": file_name,
            **lifecycle,
        }
        try:
            response = self._call(
                "POST", f"{self.cdn_url}/files/upload", what="CDN upload", auth="token", headers=headers, content=data
            )
        except FalAuthError:
            self._forget_token(token)  # revoked or expired early: the next upload asks for a new one
            raise
        return _field(response, "access_url", "CDN upload")

    def _upload_initiated(self, data: bytes, content_type: str, file_name: str, lifecycle: Mapping[str, str]) -> str:
        response = self._call(
            "POST",
            f"{self.rest_url}/storage/upload/initiate",
            what="upload initiate",
            auth="key",
            params={"storage_type": STORAGE_TYPE},
            headers={**self._key_auth(), **lifecycle},
            json={"file_name": file_name, "content_type": content_type},
        )
        target = _parse(response, _Initiated, "upload initiate")
        self._call(
            "PUT",
            target.upload_url,
            what="upload PUT",
            auth="presigned",
            client=self._guarded,
            headers={"Content-Type": content_type},
            content=data,
        )
        return target.file_url

    def _cdn_token(self) -> _CdnToken:
        with self._token_lock:
            if self._token is not None and self._fresh(self._token):
                return self._token
            response = self._call(
                "POST",
                f"{self.rest_url}/storage/auth/token",
                what="CDN token",
                auth="key",
                params={"storage_type": STORAGE_TYPE},
                headers={**self._key_auth(), "Accept": "application/json"},
                json={},
            )
            token = _parse(response, _CdnToken, "CDN token")
            self._token = token if token.expires_at is not None else None
            return token

    def _fresh(self, token: _CdnToken) -> bool:
        expires = token.expires_at
        if expires is None:
            return False
        if expires.tzinfo is None:
            expires = expires.replace(tzinfo=UTC)
        return self._now() < expires - TOKEN_MARGIN

    def _forget_token(self, token: _CdnToken) -> None:
        with self._token_lock:
            if self._token is token:
                self._token = None

    # -- checks -----------------------------------------------------------------------------------------

    def is_serving(self, url: str) -> bool:
        """Whether an uploaded URL still serves its file (reads one byte at most). 404, 410, 403 (and 401)
        mean no; transport trouble and 5xx, after the retries, raise FalStorageError."""
        shown = redact(url)

        def once() -> bool | Retry[bool]:
            try:
                with self._guarded.stream("GET", url, headers={"Range": "bytes=0-0"}) as response:
                    code = response.status_code
                    if code in _SERVING:
                        return True
                    if code in _GONE:
                        return False
                    if not is_transient_status(code):
                        raise FalStorageError(
                            f"fal storage: checking {shown}: unexpected HTTP {code}",
                            retryable=False,
                            status_code=code,
                        )
                    return Retry(f"HTTP {code}")
            except UrlRefused as exc:
                raise FalStorageError(f"fal storage: URL refused: {exc}", retryable=False) from None

        def failed(problem: str, tried: int) -> FalError:
            return FalStorageError(
                f"fal storage: could not check {shown} after {tried} attempts: {problem}", retryable=True
            )

        return self._retrying(once, what=f"fal storage check of {shown}", exhausted=failed)

    # -- plumbing ---------------------------------------------------------------------------------------

    def _call(
        self,
        method: str,
        url: str,
        *,
        what: str,
        auth: Auth,
        client: httpx.Client | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """Send with bounded retries; return a 2xx response or raise (FalAuthError on a refused key or token)."""
        shown = redact(url)

        def once() -> httpx.Response | Retry[httpx.Response]:
            try:
                response = (client or self._http).request(method, url, **kwargs)
            except UrlRefused as exc:
                raise FalStorageError(f"fal storage {what}: URL refused: {exc}", retryable=False) from None
            if response.is_success:
                return response
            detail = detail_of(response)
            code = response.status_code
            if code in (401, 403) and auth != "presigned":
                raise FalAuthError(_auth_message(what, code, detail, auth), status_code=code, detail=detail)
            problem = f"HTTP {code}" + (f": {detail}" if detail else "")
            if not is_transient_status(code):
                raise FalStorageError(
                    f"fal storage {what} ({method} {shown}): {problem}",
                    retryable=False,
                    status_code=code,
                    detail=detail,
                )
            return Retry(problem)

        def failed(problem: str, tried: int) -> FalError:
            return FalStorageError(
                f"fal storage {what} ({method} {shown}) failed after {tried} attempts: {problem}", retryable=True
            )

        return self._retrying(once, what=f"fal storage {what}", exhausted=failed)


def _lifecycle_headers(expires_in_s: int | None) -> dict[str, str]:
    if expires_in_s is None:
        return {}
    if expires_in_s < 1:
        raise ValueError("expires_in_s must be at least 1 second")
    # fal_client sends both names (fal-js only the first); the value is the same JSON object
    value = json.dumps({"expiration_duration_seconds": int(expires_in_s)})
    return {"X-Fal-Object-Lifecycle": value, "X-Fal-Object-Lifecycle-Preference": value}


def _auth_message(what: str, code: int, detail: str, auth: Auth) -> str:
    said = f" (fal said: {detail})" if detail else ""
    if auth == "token":
        return f"fal storage {what}: the CDN refused the upload token with HTTP {code}{said}"
    if code == 401:
        return f"fal storage {what}: fal rejected the key: check FAL_KEY (HTTP 401){said}"
    return (
        f"fal storage {what}: HTTP 403: the fal account is locked or may not use storage; a human has to sort "
        f"it out on fal's dashboard{said}"
    )


def _parse(response: httpx.Response, model: type[M], what: str) -> M:
    try:
        return model.model_validate(response.json())
    except (ValueError, ValidationError):
        fields = ", ".join(model.model_fields)
        raise FalStorageError(
            f"fal storage {what}: HTTP {response.status_code} without the expected fields ({fields})",
            retryable=False,
            status_code=response.status_code,
        ) from None  # the validation error quotes the answer, which may hold the token


def _field(response: httpx.Response, name: str, what: str) -> str:
    try:
        value = response.json().get(name)
    except (ValueError, AttributeError):
        value = None
    if not isinstance(value, str) or not value:
        raise FalStorageError(
            f"fal storage {what}: HTTP {response.status_code} without {name!r}",
            retryable=False,
            status_code=response.status_code,
        )
    return value
