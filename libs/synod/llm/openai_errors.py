"""The one place where the openai SDK's failures become Synod's error classes.

| what happened                                        | error             | reason             |
|------------------------------------------------------|-------------------|--------------------|
| APITimeoutError, httpx2 timeout mid-stream           | LLMTimeoutError   | timeout            |
| APIConnectionError, httpx2 transport error           | LLMTransientError | connection         |
| 429                                                  | LLMTransientError | rate_limited       |
| 503 (OpenAI's "engine overloaded"), 529              | LLMTransientError | overloaded         |
| 408, 409, other 5xx, an error object inside a stream | LLMTransientError | server_error       |
| body not JSON, or not a chat completion              | LLMTransientError | malformed_response |
| 402, or 429 with `insufficient_quota` and kin        | LLMBudgetError    | spend_limit        |
| 401, 403                                             | LLMPermanentError | auth               |
| any other 4xx (400, 404 unknown model, 422, ...)     | LLMPermanentError | bad_request        |

OpenAI answers an exhausted credit with 429 and the code `insufficient_quota`
(not a rate limit: waiting will not help); OpenRouter answers 402. An error
inside a stream arrives on a 200 response as a chunk `{"error": {...}}`, which
the SDK raises as a bare `APIError` with no status.
"""

from __future__ import annotations

import json

import httpx2
import openai

from synod.llm.errors import (
    LLMError,
    LLMPermanentError,
    LLMTimeoutError,
    LLMTransientError,
)
from synod.llm.sdk_errors import error_for_status, malformed_response, parse_retry_after

PROVIDER = "openai"
API = "Chat Completions"
QUOTA_CODES = frozenset(
    {"insufficient_quota", "billing_hard_limit_reached", "billing_not_active", "quota_exceeded"}
)


def malformed(detail: str, *, model: str) -> LLMTransientError:
    return malformed_response(detail, model=model, provider=PROVIDER, api=API)


def _error_fields(body: object) -> tuple[str | None, str | None, str]:
    """(type, code, message) of an OpenAI error body, bare or under "error"."""
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        body = body["error"]
    if not isinstance(body, dict):
        return None, None, ""
    kind, code = body.get("type"), body.get("code")
    return (
        str(kind) if kind is not None else None,
        str(code) if code is not None else None,
        str(body.get("message") or ""),
    )


def map_openai_error(err: Exception, *, model: str) -> LLMError:
    """The Synod error for an exception raised by an openai SDK call."""
    if isinstance(err, LLMError):
        return err
    if isinstance(err, openai.APITimeoutError | httpx2.TimeoutException):
        return LLMTimeoutError(f"openai: no reply within the timeout ({err!r})", model=model)
    if isinstance(err, openai.APIConnectionError | httpx2.TransportError):
        return LLMTransientError(
            f"openai: cannot reach the API: {err!r}", reason="connection", model=model
        )
    if isinstance(err, openai.APIResponseValidationError | json.JSONDecodeError):
        return malformed(str(err), model=model)
    if isinstance(err, openai.APIStatusError):
        kind, code, message = _error_fields(err.body)
        status = err.status_code
        mapped = error_for_status(
            status,
            error_type=kind,
            error_code=code,
            message=message or err.message,
            model=model,
            retry_after_s=parse_retry_after(err.response.headers),
            provider=PROVIDER,
            spend_limit_codes=QUOTA_CODES,
        )
        if status == 503 and isinstance(mapped, LLMTransientError):
            mapped.reason = "overloaded"
        return mapped
    if isinstance(err, openai.APIError):
        # An error object inside a 200 stream: the server broke off mid-answer.
        kind, code, message = _error_fields(err.body)
        if (code or kind) in QUOTA_CODES:
            return error_for_status(
                402,
                error_type=kind,
                message=message or err.message,
                model=model,
                provider=PROVIDER,
            )
        return LLMTransientError(
            f"openai: error inside the stream: {message or err.message}",
            reason="server_error",
            model=model,
        )
    if isinstance(err, openai.OpenAIError):
        return LLMPermanentError(f"openai: {err}", reason="bad_request", model=model)
    return LLMPermanentError(f"openai: {err!r}", reason="bad_request", model=model)


MAPPED_ERRORS: tuple[type[Exception], ...] = (
    openai.OpenAIError,
    httpx2.TransportError,
    json.JSONDecodeError,
)
"""What `map_openai_error` is for; anything else from the SDK is a bug to surface, not map."""
