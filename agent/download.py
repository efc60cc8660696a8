"""Plain HTTP(S) GET of presigned URLs into a staging file, with retries and resume.

The device holds no object-storage credentials: the rollout controller hands it presigned,
time-limited URLs. A download appends to `dest`; when the file already has bytes (a retry, or a
restart after SIGKILL) it asks for the rest with `Range: bytes=<have>-` and appends on `206`,
starts over on `200` (the server ignored the range). Connection errors, timeouts, 408, 429 and
5xx are retried with exponential backoff and ±20% jitter (`modelfleet.backoff`); 4xx are not
(`403` usually means the URL expired: the controller refreshes it and the new assignment is
retried). Each retry is handed to `on_retry` (attempt, cause, delay), which the slot's steps
turn into a `DownloadRetrying` status.

A URL is a secret: it is never logged and never appears in an error message; causes are built
from status codes and exception types, and `redact` removes the URL from them all the same.
"""

from __future__ import annotations

import http.client
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from modelfleet.agent.errors import Cancelled, ChecksumMismatch, DownloadFailed
from modelfleet.backoff import Backoff, retry
from modelfleet.errors import describe
from modelfleet.logs import get_logger

log = get_logger(__name__)

_CHUNK = 256 * 1024
_RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
DISK_RESERVE_BYTES = 16 * 1024 * 1024
_SECRET_LENGTH = 16


DOWNLOAD_BACKOFF = Backoff(initial=0.5, max=30.0, jitter=0.2)
"""0.5 s, doubling to 30 s, each ±20%: devices that lost the same link do not return together."""


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5
    backoff: Backoff = field(default_factory=lambda: DOWNLOAD_BACKOFF)
    timeout: float = 30.0
    """Socket timeout per connect/read."""


@dataclass
class Transfer:
    """What one `download` call did: bytes received and where it resumed (0: from scratch)."""

    received: int = 0
    resumed_at: int = 0
    attempts: int = 0


def download(
    url: str,
    dest: Path,
    *,
    size: int | None,
    policy: RetryPolicy | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    max_rate: float | None = None,
    max_bytes: int = 1 << 40,
    sleep: Callable[[float], None] = time.sleep,
    on_retry: Callable[[int, str, float], None] | None = None,
) -> Transfer:
    """Fetch `url` into `dest`, resuming what is there when `size` (the expected length) is
    known. Raises DownloadFailed, ChecksumMismatch (more bytes than `size`) or Cancelled.
    `on_retry(attempt, cause, delay)` runs before each wait (the cause never holds the URL)."""
    scheme = urlsplit(url).scheme
    if scheme not in ("http", "https"):
        raise DownloadFailed(f"only http and https URLs are fetched, not {scheme or 'none'!r}")
    if size is None:
        dest.unlink(missing_ok=True)
    limit = size if size is not None else max_bytes
    policy = policy or RetryPolicy()
    transfer = Transfer()

    def attempt() -> Transfer:
        transfer.attempts += 1
        _attempt(url, dest, limit, size is not None, policy, should_stop, max_rate, transfer)
        return transfer

    def pause(seconds: float) -> None:
        sleep(seconds)
        if should_stop():
            raise Cancelled("assignment changed while retrying")

    def retrying(attempt: int, error: BaseException, delay: float) -> None:
        cause = redact(str(error), url)
        log.info("download retry", attempt=attempt, delay_s=round(delay, 2), error=cause)
        if on_retry is not None:
            on_retry(attempt, cause, delay)

    try:
        return retry(
            attempt,
            backoff=policy.backoff,
            retry_on=lambda err: isinstance(err, _RetryableError),
            attempts=policy.attempts,
            sleep=pause,
            on_retry=retrying,
        )
    except _RetryableError as err:
        cause = redact(str(err), url)
        raise DownloadFailed(f"download failed after {policy.attempts} attempts: {cause}") from None


def redact(message: str, url: str) -> str:
    """`message` without `url`, its query string (the presigned credentials) or a long query
    parameter value of it (a signature, a credential; short ones like `3600` are common
    words of messages): pure."""
    parts = urlsplit(url)
    values = (item.partition("=")[2] for item in parts.query.split("&"))
    secrets = [url, parts.query, *(value for value in values if len(value) >= _SECRET_LENGTH)]
    for secret in sorted(filter(None, secrets), key=len, reverse=True):
        message = message.replace(secret, "<redacted>")
    return message


class _RetryableError(Exception):
    pass


def _attempt(
    url: str,
    dest: Path,
    limit: int,
    exact: bool,
    policy: RetryPolicy,
    should_stop: Callable[[], bool],
    max_rate: float | None,
    transfer: Transfer,
) -> None:
    have = dest.stat().st_size if dest.exists() else 0
    if exact and have >= limit:
        return
    if exact:
        _check_disk(dest.parent, limit - have)
    try:
        request = urllib.request.Request(url, method="GET")
        if have:
            request.add_header("Range", f"bytes={have}-")
        response = urllib.request.urlopen(request, timeout=policy.timeout)
    except urllib.error.HTTPError as err:
        with err:
            if err.code == 416 and have:
                dest.unlink()  # the range is past the end: the staged bytes are not a prefix
                raise _RetryableError("HTTP 416: staged bytes did not fit, starting over") from None
            message = f"HTTP {err.code} {err.reason}"
            if err.code in (401, 403):
                message += " (the presigned URL may have expired)"
            if err.code in _RETRY_STATUS:
                raise _RetryableError(message) from None
            raise DownloadFailed(message) from None
    except (ValueError, http.client.InvalidURL):  # their messages would quote the URL
        raise DownloadFailed("the URL is malformed") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as err:
        raise _RetryableError(describe(err, quote=False)) from None
    with response:
        if response.status == 206 and have:
            if not _range_starts_at(response.headers.get("Content-Range", ""), have):
                dest.unlink()
                raise _RetryableError("server answered a different range, starting over")
            mode = "ab"
            transfer.resumed_at = have
            log.info("download resumed", offset=have)
        else:
            mode, have = "wb", 0
        try:
            _copy(response, dest, mode, have, limit, exact, should_stop, max_rate, transfer)
        except (OSError, http.client.HTTPException) as err:
            if isinstance(err, OSError) and err.errno == 28:  # ENOSPC
                raise DownloadFailed("no space left on the device") from None
            raise _RetryableError(describe(err, quote=False)) from None
    got = dest.stat().st_size
    if exact and got < limit:
        raise _RetryableError(f"connection closed after {got} of {limit} bytes")


def _copy(
    response: http.client.HTTPResponse,
    dest: Path,
    mode: str,
    have: int,
    limit: int,
    exact: bool,
    should_stop: Callable[[], bool],
    max_rate: float | None,
    transfer: Transfer,
) -> None:
    started = time.monotonic()
    received = 0
    with dest.open(mode) as out:
        while chunk := response.read(_CHUNK):
            if have + received + len(chunk) > limit:
                out.close()
                dest.unlink()
                what = "the assigned sizeBytes" if exact else "the probe size limit"
                raise ChecksumMismatch(f"the server sent more than {limit} bytes ({what})")
            out.write(chunk)
            received += len(chunk)
            transfer.received += len(chunk)
            if should_stop():
                out.flush()
                raise Cancelled("assignment changed during download")
            if max_rate:
                ahead = received / max_rate - (time.monotonic() - started)
                if ahead > 0:
                    out.flush()
                    time.sleep(ahead)


def _range_starts_at(content_range: str, offset: int) -> bool:
    """`bytes 100-199/200` starts at 100."""
    try:
        unit, rest = content_range.split(" ", 1)
        return unit == "bytes" and int(rest.split("-", 1)[0]) == offset
    except ValueError:
        return False


def _check_disk(directory: Path, needed: int) -> None:
    free = shutil.disk_usage(directory).free
    if needed + DISK_RESERVE_BYTES > free:
        raise DownloadFailed(f"not enough disk space: {needed} bytes needed, {free} free")
