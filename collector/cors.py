"""CORS for browser ingestion: only origins some project allows get CORS headers.

Preflights are answered from the union of every project's ``allowed_origins`` (a
preflight carries neither key nor body, so the project is not known yet); the request
itself is then checked against its own project. Browsers cache a preflight for
``Access-Control-Max-Age`` seconds (Chromium caps it at 7200).
"""

from __future__ import annotations

from collections.abc import Set

from collector.projects import normalize_origin

MAX_AGE_S = 7200
ALLOW_METHODS = "POST, OPTIONS"
ALLOW_HEADERS = "Content-Type, Content-Encoding, X-API-Key"
EXPOSE_HEADERS = "Retry-After"


def origin_allowed(origin: str | None, allowed: Set[str]) -> bool:
    return bool(origin) and ("*" in allowed or normalize_origin(origin) in allowed)


def response_headers(origin: str | None, allowed: Set[str]) -> dict[str, str]:
    """Headers for an actual response: the SDK may read it, including Retry-After."""
    if not origin_allowed(origin, allowed):
        return {"Vary": "Origin"} if origin else {}
    return {"Access-Control-Allow-Origin": origin, "Access-Control-Expose-Headers": EXPOSE_HEADERS,
            "Vary": "Origin"}


def preflight(origin: str | None, method: str | None,
              allowed: Set[str]) -> tuple[int, dict[str, str]]:
    """Status and headers for ``OPTIONS /collect``."""
    if not origin_allowed(origin, allowed) or (method or "").upper() != "POST":
        return 403, {"Vary": "Origin"}
    return 204, {"Access-Control-Allow-Origin": origin,
                 "Access-Control-Allow-Methods": ALLOW_METHODS,
                 "Access-Control-Allow-Headers": ALLOW_HEADERS,
                 "Access-Control-Max-Age": str(MAX_AGE_S), "Vary": "Origin"}
