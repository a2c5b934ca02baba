"""The one place where the anthropic SDK's failures become Synod's error classes.

| what happened                                   | error                | reason             |
|-------------------------------------------------|----------------------|--------------------|
| APITimeoutError, httpx2 timeout mid-stream      | LLMTimeoutError      | timeout            |
| APIConnectionError, httpx2 transport error      | LLMTransientError    | connection         |
| 429 / rate_limit_error                          | LLMTransientError    | rate_limited       |
| 529 / overloaded_error (also inside a stream)   | LLMTransientError    | overloaded         |
| 408, 409, other 5xx, api_error, timeout_error   | LLMTransientError    | server_error       |
| body not JSON or not a Message                  | LLMTransientError    | malformed_response |
| 402 / billing_error, 429 spend-limit codes      | LLMBudgetError       | spend_limit        |
| 401, 403 / authentication or permission error   | LLMPermanentError    | auth               |
| any other 4xx (400, 404, 413, 422, ...)         | LLMPermanentError    | bad_request        |

An error event inside a stream arrives on a 200 response, so the error type in
the body decides before the status code does. `retry_after_s` comes from the
`retry-after-ms` or `retry-after` header when the server sent one.
"""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Mapping

import anthropic
import httpx2

from synod.llm.errors import (
    LLMBudgetError,
    LLMError,
    LLMErrorReason,
    LLMPermanentError,
    LLMTimeoutError,
    LLMTransientError,
)

SPEND_LIMIT_CODES = frozenset({"contract_spend_limit_reached", "enforced_spend_limit_reached"})


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait, from `retry-after-ms`, `retry-after` (seconds or an HTTP date)."""
    lowered = {k.lower(): v for k, v in headers.items()}
    if "retry-after-ms" in lowered:
        try:
            return max(0.0, float(lowered["retry-after-ms"]) / 1000)
        except ValueError:
            pass
    value = lowered.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    parsed = email.utils.parsedate_tz(value)
    if parsed is None:
        return None
    return max(0.0, email.utils.mktime_tz(parsed) - time.time())


def error_for_status(
    status: int,
    *,
    error_type: str | None,
    error_code: str | None = None,
    message: str,
    model: str,
    retry_after_s: float | None = None,
    provider: str = "anthropic",
    spend_limit_codes: frozenset[str] = SPEND_LIMIT_CODES,
) -> LLMError:
    """The error for an HTTP status and the API's error type and code.

    The OpenAI mapping (synod.llm.openai_errors) uses it too, with its own
    spend-limit codes: the statuses mean the same on every provider.
    """
    text = f"{provider} {status} {error_type or ''}: {message}".replace("  ", " ")
    if (
        status == 402
        or error_type == "billing_error"
        or error_code in spend_limit_codes
        or error_type in spend_limit_codes
    ):
        return LLMBudgetError(text, reason="spend_limit", model=model, status=status)
    transient_reason: LLMErrorReason | None = None
    if status == 429 or error_type == "rate_limit_error":
        transient_reason = "rate_limited"
    elif status == 529 or error_type == "overloaded_error":
        transient_reason = "overloaded"
    elif status in (408, 409) or status >= 500 or error_type in ("api_error", "timeout_error"):
        transient_reason = "server_error"
    if transient_reason is not None:
        return LLMTransientError(
            text,
            reason=transient_reason,
            model=model,
            status=status,
            retry_after_s=retry_after_s,
        )
    if status in (401, 403) or error_type in ("authentication_error", "permission_error"):
        return LLMPermanentError(text, reason="auth", model=model, status=status)
    return LLMPermanentError(text, reason="bad_request", model=model, status=status)


def malformed_response(
    detail: str, *, model: str, provider: str = "anthropic", api: str = "Messages API"
) -> LLMTransientError:
    # A garbled reply is the provider's (or a proxy's) glitch; the same request may well work.
    return LLMTransientError(
        f"{provider} reply is not a valid {api} response: {detail}",
        reason="malformed_response",
        model=model,
    )


def map_sdk_error(err: Exception, *, model: str) -> LLMError:
    """The Synod error for an exception raised by an anthropic SDK call."""
    if isinstance(err, LLMError):
        return err
    if isinstance(err, anthropic.APITimeoutError | httpx2.TimeoutException):
        return LLMTimeoutError(f"anthropic: no reply within the timeout ({err!r})", model=model)
    if isinstance(err, anthropic.APIConnectionError | httpx2.TransportError):
        return LLMTransientError(
            f"anthropic: cannot reach the API: {err!r}", reason="connection", model=model
        )
    if isinstance(err, anthropic.APIResponseValidationError | json.JSONDecodeError):
        return malformed_response(str(err), model=model)
    if isinstance(err, anthropic.APIStatusError):
        return error_for_status(
            err.status_code,
            error_type=err.type,
            error_code=err.error_code,
            message=err.api_message or err.message,
            model=model,
            retry_after_s=parse_retry_after(err.response.headers),
        )
    if isinstance(err, anthropic.CredentialsError):
        return LLMPermanentError(f"anthropic credentials: {err}", reason="auth", model=model)
    return LLMPermanentError(f"anthropic: {err!r}", reason="bad_request", model=model)


MAPPED_ERRORS: tuple[type[Exception], ...] = (
    anthropic.AnthropicError,
    httpx2.TransportError,
    json.JSONDecodeError,
)
"""What `map_sdk_error` is for; anything else from the SDK is a bug to surface, not map."""
