"""`describe`: every exception as one short line, never a URL where it may carry one."""

from __future__ import annotations

import urllib.error
from email.message import Message

import pytest
from kubernetes.client.exceptions import ApiException

from modelfleet.errors import describe

SECRET_URL = "http://minio:9000/b/model.onnx?X-Amz-Signature=topsecret"


@pytest.mark.parametrize(
    ("err", "line"),
    [
        (ApiException(status=503, reason="Service Unavailable"), "HTTP 503 Service Unavailable"),
        (ApiException(status=0, reason="connection refused"), "HTTP 0 connection refused"),
        (
            urllib.error.HTTPError(SECRET_URL, 403, "Forbidden", Message(), None),
            "HTTP 403 Forbidden",
        ),
        (urllib.error.URLError("no route"), "connection failed: no route"),
        (
            urllib.error.URLError(ConnectionRefusedError(111, "Connection refused")),
            "ConnectionRefusedError: Connection refused",
        ),
        (urllib.error.URLError(TimeoutError("timed out")), "timed out"),
        (TimeoutError(), "timed out"),
        (OSError(28, "No space left on device"), "OSError: No space left on device"),
        (ValueError("bad value"), "ValueError: bad value"),
    ],
)
def test_one_line_per_kind(err: BaseException, line: str) -> None:
    assert describe(err) == line


def test_long_messages_are_cut() -> None:
    assert len(describe(RuntimeError("x" * 1000))) == len("RuntimeError: ") + 200


def test_without_quoting_only_the_type_is_told() -> None:
    err = ValueError(f"cannot parse {SECRET_URL}")
    assert describe(err, quote=False) == "ValueError"
    assert "topsecret" not in describe(urllib.error.URLError(err), quote=False)
