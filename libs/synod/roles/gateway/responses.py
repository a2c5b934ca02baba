"""The gateway's error answer, one shape for every endpoint (CONVENTIONS)."""

from __future__ import annotations

from typing import Any

from aiohttp import web


def error_response(
    status: int,
    code: str,
    message: str,
    details: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    """CONVENTIONS: `{"error": {"code", "message", "details"}}`."""
    body = {"error": {"code": code, "message": message, "details": details or {}}}
    return web.json_response(body, status=status, headers=headers)


__all__ = ["error_response"]
