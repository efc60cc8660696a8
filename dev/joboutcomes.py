"""What the Job controller would conclude from a finished attempt: the pure part of the dev
job runner. Mirrors batch/v1 semantics: podFailurePolicy rules are checked in order, FailJob
ends the Job at once, Ignore does not count against backoffLimit, Count (or no match) does."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

Verdict = Literal["Complete", "Failed", "Retry"]


@dataclass(frozen=True)
class Outcome:
    verdict: Verdict
    reason: str = ""
    message: str = ""
    counts_as_failure: bool = False


def _rule_matches(rule: Mapping[str, Any], container: str, exit_code: int) -> bool:
    on_codes = rule.get("onExitCodes")
    if not on_codes:
        return False
    if on_codes.get("containerName") not in (None, container):
        return False
    values = set(on_codes.get("values", []))
    if on_codes.get("operator") == "In":
        return exit_code in values
    return exit_code not in values and exit_code != 0


def attempt_outcome(
    *,
    exit_code: int,
    failed_so_far: int,
    backoff_limit: int,
    pod_failure_policy: Mapping[str, Any] | None,
    container: str,
    pod_name: str,
) -> Outcome:
    """Decide the Job's fate after one attempt exited with `exit_code`."""
    if exit_code == 0:
        return Outcome(
            "Complete", "CompletionsReached", "Reached expected number of succeeded pods"
        )
    rules: Sequence[Mapping[str, Any]] = (pod_failure_policy or {}).get("rules", [])
    for index, rule in enumerate(rules):
        if not _rule_matches(rule, container, exit_code):
            continue
        action = rule.get("action")
        if action == "FailJob":
            return Outcome(
                "Failed",
                "PodFailurePolicy",
                f"Container {container} for pod {pod_name} failed with exit code {exit_code} "
                f"matching FailJob rule at index {index}",
                counts_as_failure=True,
            )
        if action == "Ignore":
            return Outcome("Retry")
        break
    if failed_so_far + 1 > backoff_limit:
        return Outcome(
            "Failed",
            "BackoffLimitExceeded",
            "Job has reached the specified backoff limit",
            counts_as_failure=True,
        )
    return Outcome("Retry", counts_as_failure=True)
