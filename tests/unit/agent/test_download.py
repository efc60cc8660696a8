"""Downloads against a local HTTP server that misbehaves on purpose."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from modelfleet.agent.download import RetryPolicy, download, redact
from modelfleet.agent.errors import Cancelled, ChecksumMismatch, DownloadFailed
from modelfleet.backoff import Backoff

BLOB = bytes(range(256)) * 4096  # 1 MiB: more than one read chunk
FAST = RetryPolicy(attempts=3, backoff=Backoff(0.01, max=0.02, jitter=0.2), timeout=5)
SECRET = "X-Amz-Signature=topsecret"


@dataclass
class Behaviour:
    fail_first: int = 0
    fail_status: int = 503
    ignore_range: bool = False
    cut_after: int | None = None
    """Close the connection after this many body bytes of the first response."""
    ranges: list[str | None] = field(default_factory=list)


class Handler(BaseHTTPRequestHandler):
    behaviour: Behaviour

    def do_GET(self) -> None:
        b = self.server.behaviour  # type: ignore[attr-defined]
        b.ranges.append(self.headers.get("Range"))
        if len(b.ranges) <= b.fail_first:
            self.send_error(b.fail_status)
            return
        start = 0
        header = self.headers.get("Range")
        if header and not b.ignore_range:
            start = int(header.removeprefix("bytes=").split("-")[0])
            if start >= len(BLOB):
                self.send_error(416)
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(BLOB) - 1}/{len(BLOB)}")
        else:
            self.send_response(200)
        body = BLOB[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if b.cut_after is not None and len(b.ranges) == b.fail_first + 1:
            self.wfile.write(body[: b.cut_after])
            self.wfile.flush()
            self.connection.shutdown(2)
            return
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[tuple[str, Behaviour]]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.behaviour = Behaviour()  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/obj?{SECRET}", httpd.behaviour  # type: ignore[attr-defined]
    httpd.shutdown()
    httpd.server_close()


def test_whole_download(server: tuple[str, Behaviour], tmp_path: Path) -> None:
    url, _ = server
    dest = tmp_path / "x.part"
    transfer = download(url, dest, size=len(BLOB), policy=FAST)
    assert dest.read_bytes() == BLOB and transfer.resumed_at == 0


def test_resumes_staged_bytes_with_a_range_request(
    server: tuple[str, Behaviour], tmp_path: Path
) -> None:
    url, behaviour = server
    dest = tmp_path / "x.part"
    dest.write_bytes(BLOB[:5000])
    transfer = download(url, dest, size=len(BLOB), policy=FAST)
    assert dest.read_bytes() == BLOB
    assert behaviour.ranges == ["bytes=5000-"]
    assert (transfer.resumed_at, transfer.received) == (5000, len(BLOB) - 5000)


def test_a_server_that_ignores_ranges_means_starting_over(
    server: tuple[str, Behaviour], tmp_path: Path
) -> None:
    url, behaviour = server
    behaviour.ignore_range = True
    dest = tmp_path / "x.part"
    dest.write_bytes(b"\xff" * 5000)
    download(url, dest, size=len(BLOB), policy=FAST)
    assert dest.read_bytes() == BLOB


def test_a_dropped_connection_is_resumed_within_the_call(
    server: tuple[str, Behaviour], tmp_path: Path
) -> None:
    url, behaviour = server
    behaviour.cut_after = 3000
    dest = tmp_path / "x.part"
    transfer = download(url, dest, size=len(BLOB), policy=FAST)
    assert dest.read_bytes() == BLOB
    assert behaviour.ranges == [None, "bytes=3000-"] and transfer.attempts == 2


def test_server_errors_are_retried(server: tuple[str, Behaviour], tmp_path: Path) -> None:
    url, behaviour = server
    behaviour.fail_first = 2
    download(url, tmp_path / "x.part", size=len(BLOB), policy=FAST)
    assert len(behaviour.ranges) == 3


def test_retries_give_up_with_a_message_that_hides_the_url(
    server: tuple[str, Behaviour], tmp_path: Path
) -> None:
    url, behaviour = server
    behaviour.fail_first = 99
    with pytest.raises(DownloadFailed, match="after 3 attempts: HTTP 503") as caught:
        download(url, tmp_path / "x.part", size=len(BLOB), policy=FAST)
    assert "topsecret" not in str(caught.value) and "127.0.0.1" not in str(caught.value)


def test_each_retry_is_told_its_attempt_and_cause_without_the_url(
    server: tuple[str, Behaviour], tmp_path: Path
) -> None:
    url, behaviour = server
    behaviour.fail_first = 2
    retries: list[tuple[int, str, float]] = []
    download(
        url,
        tmp_path / "x.part",
        size=len(BLOB),
        policy=FAST,
        on_retry=lambda *retry: retries.append(retry),
    )
    assert [(attempt, cause) for attempt, cause, _ in retries] == [
        (1, "HTTP 503 Service Unavailable"),
        (2, "HTTP 503 Service Unavailable"),
    ]
    assert all(0 < delay <= 0.024 for _, _, delay in retries)


def test_a_stalled_server_times_out_and_is_retried(tmp_path: Path) -> None:
    """What a paused MinIO looks like: the kernel accepts the connection, nobody answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/x?{SECRET}"
        causes: list[str] = []
        policy = RetryPolicy(attempts=2, backoff=Backoff(0.01), timeout=0.2)
        with pytest.raises(DownloadFailed, match="after 2 attempts: timed out") as caught:
            download(
                url,
                tmp_path / "x",
                size=10,
                policy=policy,
                on_retry=lambda _, c, __: causes.append(c),
            )
    assert causes == ["timed out"] and "topsecret" not in str(caught.value)


SIGNED_QUERY = f"X-Amz-Expires=3600&{SECRET}&X-Amz-Credential=minio%2F20260501"
SIGNED_URL = f"http://h/o?{SIGNED_QUERY}"


@pytest.mark.parametrize(
    ("message", "redacted"),
    [
        (f"GET {SIGNED_URL} failed", "GET <redacted> failed"),
        (f"query {SIGNED_QUERY}", "query <redacted>"),
        ("credential minio%2F20260501 leaked", "credential <redacted> leaked"),
        ("got 3600 of 4000 bytes", "got 3600 of 4000 bytes"),
    ],
)
def test_redact_removes_the_url_and_its_credentials(message: str, redacted: str) -> None:
    assert redact(message, SIGNED_URL) == redacted


def test_an_expired_url_is_not_retried(server: tuple[str, Behaviour], tmp_path: Path) -> None:
    url, behaviour = server
    behaviour.fail_first, behaviour.fail_status = 99, 403
    with pytest.raises(DownloadFailed, match=r"HTTP 403.*expired") as caught:
        download(url, tmp_path / "x.part", size=len(BLOB), policy=FAST)
    assert len(behaviour.ranges) == 1 and "topsecret" not in str(caught.value)


def test_nothing_listening_is_a_download_failure(tmp_path: Path) -> None:
    with pytest.raises(DownloadFailed, match="refused") as caught:
        download(f"http://127.0.0.1:9/x?{SECRET}", tmp_path / "x", size=10, policy=FAST)
    assert "topsecret" not in str(caught.value)


def test_more_bytes_than_assigned_is_a_checksum_mismatch(
    server: tuple[str, Behaviour], tmp_path: Path
) -> None:
    url, _ = server
    dest = tmp_path / "x.part"
    with pytest.raises(ChecksumMismatch, match="more than 100 bytes"):
        download(url, dest, size=100, policy=FAST)
    assert not dest.exists()


def test_unknown_size_fetches_whole_files_within_a_limit(
    server: tuple[str, Behaviour], tmp_path: Path
) -> None:
    url, _ = server
    dest = tmp_path / "probe.tmp"
    dest.write_bytes(b"stale")
    download(url, dest, size=None, policy=FAST)
    assert dest.read_bytes() == BLOB
    with pytest.raises(ChecksumMismatch):
        download(url, dest, size=None, policy=FAST, max_bytes=1000)


def test_a_changed_assignment_cancels_and_keeps_the_partial_file(
    server: tuple[str, Behaviour], tmp_path: Path
) -> None:
    url, _ = server
    dest = tmp_path / "x.part"
    with pytest.raises(Cancelled):
        download(url, dest, size=len(BLOB), policy=FAST, should_stop=lambda: True)
    assert 0 < dest.stat().st_size < len(BLOB)


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://host/x", "s3://bucket/key"])
def test_only_http_urls_are_fetched(url: str, tmp_path: Path) -> None:
    with pytest.raises(DownloadFailed, match="only http"):
        download(url, tmp_path / "x", size=10, policy=FAST)


@pytest.mark.parametrize(
    "url", ["http://host:port/x?sig=topsecret", "http://h/a b\n?sig=topsecret"]
)
def test_malformed_urls_fail_without_quoting_them(url: str, tmp_path: Path) -> None:
    with pytest.raises(DownloadFailed, match="malformed") as caught:
        download(url, tmp_path / "x", size=10, policy=FAST)
    assert "topsecret" not in str(caught.value)
