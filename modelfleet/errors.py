"""`describe(err)`: any exception as one short line, for a log field or a status message.

The agent, the operator's watches and the dev tools log failures of the Kubernetes client,
urllib and the OS; a raw `str(err)` is multi-line (an ApiException carries headers and body)
or quotes a URL, and an assignment URL is a presigned secret. `quote=False` drops the
exception's own text where it might carry one (the agent's downloads).
"""

from __future__ import annotations

import socket
import urllib.error


def describe(err: BaseException, *, quote: bool = True) -> str:
    status = getattr(err, "status", None)
    if isinstance(status, int):  # ApiException, urllib's HTTPError
        return f"HTTP {status} {getattr(err, 'reason', '') or ''}".strip()
    if isinstance(err, urllib.error.URLError):
        reason = err.reason
        if isinstance(reason, BaseException):
            return describe(reason, quote=quote)
        return f"connection failed: {reason}"
    if isinstance(err, socket.timeout | TimeoutError):
        return "timed out"
    if isinstance(err, OSError) and err.strerror:
        return f"{type(err).__name__}: {err.strerror}"
    if not quote:
        return type(err).__name__
    return f"{type(err).__name__}: {str(err)[:200]}"
