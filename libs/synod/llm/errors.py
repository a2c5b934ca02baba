"""Errors of the LLM backends, each carrying the class that decides what happens next.

`LLMTransientError` is worth retrying (maybe elsewhere or later), `LLMPermanentError`
is not, and `LLMBudgetError` means money or quota is spent. Every error carries the
usage spent before it happened, so a failed step still reports its tokens and cost.
"""

from __future__ import annotations

from typing import Literal

from synod.errors import ErrorClass, SynodError
from synod.wire.messages import ModelRoute, Usage

# Stable codes for metrics labels and dead letters; the message says the details.
LLMErrorReason = Literal[
    "timeout",  # no reply within the timeout (the SDK's or the simulated one)
    "rate_limited",  # 429
    "overloaded",  # 529, or an overloaded_error event inside a stream
    "server_error",  # other 5xx, 408, 409, an api_error event
    "connection",  # the provider could not be reached
    "malformed_response",  # a reply that is not a valid Messages API response
    "bad_request",  # 400, 404, 413, 422: the request itself is wrong
    "auth",  # 401, 403
    "refusal",  # the model declined (stop_reason "refusal")
    "invalid_output",  # output still not valid for the output model after one repair
    "spend_limit",  # 402 billing, or a 429 that says a spend limit is reached
    "circuit_open",  # every circuit breaker in the fallback chain is open: wait, then retry
    "budget_exhausted",  # the call's worst case does not fit the task's budget (llm.budget)
]


class LLMError(SynodError):
    """Base of the errors an LLM backend raises."""

    def __init__(
        self,
        message: str,
        *,
        reason: LLMErrorReason,
        model: str = "",
        status: int | None = None,
        usage: Usage | None = None,
    ) -> None:
        super().__init__(message)
        self.reason: LLMErrorReason = reason
        self.model = model
        self.status = status
        # Mutable on purpose: a structured call adds the usage of the turns before it.
        self.usage: Usage = usage if usage is not None else Usage(model=model)
        # Set by the resilience wrapper: the links tried, and why each one failed.
        self.route: ModelRoute | None = None


class LLMTransientError(LLMError):
    """Worth retrying; `retry_after_s` is the provider's own hint when it gave one."""

    error_class: ErrorClass = "transient"

    def __init__(
        self,
        message: str,
        *,
        reason: LLMErrorReason,
        model: str = "",
        status: int | None = None,
        usage: Usage | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message, reason=reason, model=model, status=status, usage=usage)
        self.retry_after_s = retry_after_s


class LLMTimeoutError(LLMTransientError):
    """No reply within the timeout; separate so supervisors can count hangs apart."""

    def __init__(self, message: str, *, model: str = "", usage: Usage | None = None) -> None:
        super().__init__(message, reason="timeout", model=model, usage=usage)


class LLMPermanentError(LLMError):
    """Retrying the same request will not help: a bad request, a refusal, invalid output."""

    error_class: ErrorClass = "permanent"


class LLMBudgetError(LLMError):
    """A spend limit or the account's credit is exhausted."""

    error_class: ErrorClass = "budget"
