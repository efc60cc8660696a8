"""Classified agent failures: each carries the machine `reason` the slot status reports.

    reason            raised when                                          retried?
    DownloadFailed    the artifact or probe could not be fetched (HTTP      yes, with backoff
                      status, connection, timeout, disk full)
    ChecksumMismatch  the downloaded bytes have the wrong size or sha256    no (new assignment)
    LoadFailed        the engine refuses to load the artifact               no (new assignment)
    RuntimeUnavailable  the requested engine is not installed, or none of   no (new assignment)
                      the requested providers/devices exists here
    RuntimeFallback   the preferred backend did not take the graph and      no (new assignment)
                      the runtime request has allowFallback: false
    ProbeFailed       the probe is unreadable, does not fit the model, or   no (new assignment)
                      the outputs on this device differ from the reference
    ActivationFailed  the --on-activate command failed or timed out (the    no (new assignment)
                      slot is rolled back to the model active before)

Messages are for humans and never contain a URL: assignment URLs are presigned secrets.
Third-party exceptions are translated at the boundary (`raise ... from err`).
"""

from __future__ import annotations

from typing import ClassVar, Literal

Reason = Literal[
    "DownloadFailed",
    "ChecksumMismatch",
    "LoadFailed",
    "ProbeFailed",
    "RuntimeUnavailable",
    "RuntimeFallback",
    "ActivationFailed",
]
RETRYABLE: frozenset[str] = frozenset({"DownloadFailed"})


class AgentError(Exception):
    """Base of the agent's classified failures."""

    reason: ClassVar[Reason] = "DownloadFailed"

    @property
    def message(self) -> str:
        return str(self)


class DownloadFailed(AgentError):  # noqa: N818 (named for its reason)
    reason = "DownloadFailed"


class ChecksumMismatch(AgentError):  # noqa: N818 (named for its reason)
    reason = "ChecksumMismatch"


class LoadFailed(AgentError):  # noqa: N818 (named for its reason)
    reason = "LoadFailed"


class ProbeFailed(AgentError):  # noqa: N818 (named for its reason)
    reason = "ProbeFailed"


class RuntimeUnavailable(AgentError):  # noqa: N818 (named for its reason)
    reason = "RuntimeUnavailable"


class RuntimeFallback(AgentError):  # noqa: N818 (named for its reason)
    reason = "RuntimeFallback"


class ActivationFailed(AgentError):  # noqa: N818 (named for its reason)
    reason = "ActivationFailed"


class Cancelled(Exception):  # noqa: N818 (a signal, not a failure)
    """The slot's assignment changed under a running step; the partial work is kept."""


class ProvisioningError(RuntimeError):
    """A device identity could not be created, or is not confined to its own objects."""
