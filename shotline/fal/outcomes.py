"""What a request's final answer means: its outcome, whether fal billed it, whether a new submit may help.

fal's result endpoint returns the model's stored answer (https://fal.ai/docs/inference-api/queue/result):
an answer that carries `x-fal-request-id` is final for that request and is classified exactly once, from the
HTTP status, `detail[].type` / `error_type`, `X-Fal-Retryable`, `X-Fal-Request-Timeout-Type` and
`X-Fal-Billable-Units`. Billing (https://docs.fal.ai/faq and fal's pricing page): 2xx is billed; 5xx is
never billed (a model error, a runner error, the start timeout); a 422 may be billed; `X-Fal-Billable-Units`,
when present, is what fal says it billed.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import httpx

from shotline.fal.errors import format_detail

CANCELLED_ERROR_TYPES = frozenset({"client_cancelled", "client_disconnected"})
# request (infrastructure) errors (fal's request-errors page): fal never bills them and a new submit may succeed
RUNNER_ERROR_TYPES = frozenset(
    {
        "request_timeout",
        "startup_timeout",
        "runner_scheduling_failure",
        "runner_connection_timeout",
        "runner_disconnected",
        "runner_connection_refused",
        "runner_connection_error",
        "runner_incomplete_response",
        "runner_server_error",
        "runner_unavailable",
        "internal_error",
    }
)
# model errors that describe a passing condition (the 5xx types of fal's toolkit): worth a new submit when
# the answer does not say otherwise through X-Fal-Retryable
TRANSIENT_MODEL_ERROR_TYPES = frozenset(
    {"internal_server_error", "generation_timeout", "downstream_service_unavailable"}
)


class OutcomeKind(StrEnum):
    SUCCEEDED = "succeeded"
    CANCELLED = "cancelled"
    START_TIMEOUT = "start_timeout"  # no free runner before X-Fal-Request-Timeout: never started
    MODEL_ERROR = "model_error"  # the model's own error answer (`detail` list)
    RUNNER_ERROR = "runner_error"  # fal's infrastructure (flat `detail` + `error_type`)
    INPUT_ERROR = "input_error"  # 422: the input was refused, possibly after GPU time
    REQUEST_ERROR = "request_error"  # any other 4xx


@dataclass(frozen=True)
class Outcome:
    kind: OutcomeKind
    status_code: int
    billed: bool | None  # None: may have been billed (fal does not say)
    retryable: bool  # whether a *new* submit of the same input may succeed
    error_type: str | None = None
    detail: str = ""
    billable_units: float | None = None

    @property
    def succeeded(self) -> bool:
        return self.kind == OutcomeKind.SUCCEEDED

    def describe(self) -> str:
        billed = {True: "billed", False: "not billed", None: "possibly billed"}[self.billed]
        what = {
            OutcomeKind.CANCELLED: "cancelled",
            OutcomeKind.START_TIMEOUT: "fal had no free runner before the start timeout, so it never started",
            OutcomeKind.MODEL_ERROR: "the model failed",
            OutcomeKind.RUNNER_ERROR: "fal's infrastructure failed",
            OutcomeKind.INPUT_ERROR: "fal refused the input",
            OutcomeKind.REQUEST_ERROR: "fal refused the request",
            OutcomeKind.SUCCEEDED: "succeeded",
        }[self.kind]
        kind = f" ({self.error_type})" if self.error_type else ""
        explained = f": {self.detail}" if self.detail else ""
        return f"{what}{kind}, HTTP {self.status_code}, {billed}{explained}"


def is_final_answer(response: httpx.Response) -> bool:
    """An answer fal itself gave about the request (so re-GETting it returns the same). Transport errors,
    gateway pages without x-fal-request-id and 429 are not: those are worth another GET."""
    return "x-fal-request-id" in response.headers and response.status_code != 429


def classify(response: httpx.Response) -> Outcome:
    body = _json(response)
    return classify_answer(response.status_code, response.headers, body)


def classify_answer(status_code: int, headers: httpx.Headers | dict[str, str], body: Any) -> Outcome:
    headers = httpx.Headers(headers)
    units = _float(headers.get("x-fal-billable-units"))
    detail, error_type, is_model_error = _explain(body, headers)
    if 200 <= status_code < 300:
        return Outcome(OutcomeKind.SUCCEEDED, status_code, True, False, billable_units=units)
    billed_by_units = None if units is None else units > 0
    billed: bool | None
    if status_code == 499 or error_type in CANCELLED_ERROR_TYPES:
        kind, billed, retryable = OutcomeKind.CANCELLED, bool(billed_by_units), True
    elif status_code == 504 and headers.get("x-fal-request-timeout-type", "").lower() == "user":
        kind, billed, retryable = OutcomeKind.START_TIMEOUT, False, True
        error_type = error_type or "request_timeout"
    elif status_code >= 500:
        kind = OutcomeKind.MODEL_ERROR if is_model_error else OutcomeKind.RUNNER_ERROR
        billed = bool(billed_by_units)  # fal does not bill 5xx, unless the app says it billed units
        flag = headers.get("x-fal-retryable")
        if flag is not None:
            retryable = flag.strip().lower() == "true"
        else:
            retryable = error_type in RUNNER_ERROR_TYPES or error_type in TRANSIENT_MODEL_ERROR_TYPES
    elif status_code == 422:
        kind, billed, retryable = OutcomeKind.INPUT_ERROR, billed_by_units, False
    else:
        kind, billed, retryable = OutcomeKind.REQUEST_ERROR, billed_by_units, False
    return Outcome(kind, status_code, billed, retryable, error_type, detail, units)


def _explain(body: Any, headers: httpx.Headers) -> tuple[str, str | None, bool]:
    """(fal's explanation, its error type, whether it is a model error's `detail` list)."""
    error_type = headers.get("x-fal-error-type")
    if not isinstance(body, dict):
        return "", error_type, False
    raw = body.get("detail", body.get("error") or body.get("message"))
    is_list = isinstance(raw, list)
    if is_list and raw and isinstance(raw[0], dict) and raw[0].get("type"):
        error_type = error_type or str(raw[0]["type"])
    error_type = body.get("error_type") or error_type
    return format_detail(raw), error_type, is_list


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _float(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None
