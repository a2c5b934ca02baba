"""The mapping from the anthropic SDK's exceptions to Synod's error classes, as a table."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import anthropic
import httpx2
import pytest

from synod.llm import LLMBudgetError, LLMPermanentError, LLMTimeoutError, LLMTransientError
from synod.llm.sdk_errors import map_sdk_error, parse_retry_after

REQUEST = httpx2.Request("POST", "https://api.anthropic.test/v1/messages")


def status_error(
    status: int,
    error_type: str,
    *,
    headers: dict[str, str] | None = None,
    error_code: str | None = None,
) -> anthropic.APIStatusError:
    error: dict[str, object] = {"type": error_type, "message": f"fake {error_type}"}
    if error_code:
        error["details"] = {"error_code": error_code}
    body = {"type": "error", "error": error}
    response = httpx2.Response(status, request=REQUEST, headers=headers or {}, json=body)
    # What the SDK raises: the class it picks for the status and error code.
    return anthropic._error_classes.make_status_error(
        f"Error code: {status}", body=body, response=response
    )


@pytest.mark.parametrize(
    ("error", "expected", "reason"),
    [
        (status_error(429, "rate_limit_error"), LLMTransientError, "rate_limited"),
        (status_error(529, "overloaded_error"), LLMTransientError, "overloaded"),
        (status_error(500, "api_error"), LLMTransientError, "server_error"),
        (status_error(503, "api_error"), LLMTransientError, "server_error"),
        (status_error(504, "timeout_error"), LLMTransientError, "server_error"),
        (status_error(408, "timeout_error"), LLMTransientError, "server_error"),
        (status_error(409, "conflict_error"), LLMTransientError, "server_error"),
        # An error event inside a stream arrives on the stream's 200 response.
        (status_error(200, "overloaded_error"), LLMTransientError, "overloaded"),
        (status_error(200, "api_error"), LLMTransientError, "server_error"),
        (status_error(400, "invalid_request_error"), LLMPermanentError, "bad_request"),
        (status_error(404, "not_found_error"), LLMPermanentError, "bad_request"),
        (status_error(413, "request_too_large"), LLMPermanentError, "bad_request"),
        (status_error(401, "authentication_error"), LLMPermanentError, "auth"),
        (status_error(403, "permission_error"), LLMPermanentError, "auth"),
        (status_error(402, "billing_error"), LLMBudgetError, "spend_limit"),
        (
            status_error(429, "rate_limit_error", error_code="enforced_spend_limit_reached"),
            LLMBudgetError,
            "spend_limit",
        ),
        (anthropic.APITimeoutError(request=REQUEST), LLMTimeoutError, "timeout"),
        (httpx2.ReadTimeout("stalled", request=REQUEST), LLMTimeoutError, "timeout"),
        (anthropic.APIConnectionError(request=REQUEST), LLMTransientError, "connection"),
        (httpx2.ConnectError("refused", request=REQUEST), LLMTransientError, "connection"),
        (json.JSONDecodeError("Expecting value", "{", 1), LLMTransientError, "malformed_response"),
        (anthropic.CredentialsError("no key"), LLMPermanentError, "auth"),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, Exception) else str(value),
)
def test_error_mapping(error: Exception, expected: type, reason: str) -> None:
    mapped = map_sdk_error(error, model="claude-x")
    assert type(mapped) is expected
    assert mapped.reason == reason
    assert mapped.model == "claude-x"
    assert (
        mapped.error_class
        == {
            LLMTransientError: "transient",
            LLMTimeoutError: "transient",
            LLMPermanentError: "permanent",
            LLMBudgetError: "budget",
        }[expected]
    )


def test_status_and_retry_after_are_kept() -> None:
    mapped = map_sdk_error(
        status_error(529, "overloaded_error", headers={"retry-after": "7"}), model="m"
    )
    assert isinstance(mapped, LLMTransientError)
    assert (mapped.status, mapped.retry_after_s) == (529, 7.0)
    assert "fake overloaded_error" in str(mapped)


def test_retry_after_forms() -> None:
    assert parse_retry_after({}) is None
    assert parse_retry_after({"retry-after": "3"}) == 3.0
    assert parse_retry_after({"Retry-After": "0.5"}) == 0.5
    assert parse_retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert parse_retry_after({"retry-after": "soon"}) is None
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=120), usegmt=True)
    in_two_minutes = parse_retry_after({"retry-after": later})
    assert in_two_minutes is not None
    assert 100 < in_two_minutes <= 120
