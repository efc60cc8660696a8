"""set_condition: lastTransitionTime moves only when the status does."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from modelfleet.conditions import (
    MESSAGE_LIMIT,
    format_time,
    get_condition,
    parse_time,
    set_condition,
)

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
LATER = T0 + timedelta(minutes=5)


def test_a_new_condition_transitions_now() -> None:
    conditions = set_condition(
        [], type="Ready", status="False", reason="Pending", message="", now=T0
    )
    assert conditions[0].last_transition_time == "2024-05-01T12:00:00Z"


def test_same_status_keeps_the_transition_time_but_takes_the_new_reason() -> None:
    before = set_condition([], type="Ready", status="False", reason="A", message="a", now=T0)
    after = set_condition(
        before,
        type="Ready",
        status="False",
        reason="B",
        message="b",
        now=LATER,
        observed_generation=2,
    )
    assert after[0].last_transition_time == format_time(T0)
    assert (after[0].reason, after[0].message, after[0].observed_generation) == ("B", "b", 2)


def test_a_status_change_moves_the_transition_time() -> None:
    before = set_condition([], type="Ready", status="False", reason="A", message="", now=T0)
    after = set_condition(before, type="Ready", status="True", reason="A", message="", now=LATER)
    assert after[0].last_transition_time == format_time(LATER)


def test_other_conditions_keep_their_place_and_the_input_is_not_changed() -> None:
    conditions = set_condition([], type="A", status="True", reason="r", message="", now=T0)
    conditions = set_condition(conditions, type="B", status="True", reason="r", message="", now=T0)
    updated = set_condition(conditions, type="A", status="False", reason="r", message="", now=LATER)
    assert [c.type for c in updated] == ["A", "B"]
    original = get_condition(conditions, "A")
    assert original is not None and original.status == "True"


def test_long_messages_are_cut_to_what_the_schema_allows() -> None:
    conditions = set_condition(
        [], type="A", status="True", reason="r", message="x" * 10_000, now=T0
    )
    assert len(conditions[0].message) == MESSAGE_LIMIT


def test_times_round_trip_in_utc() -> None:
    assert parse_time("2024-05-01T12:00:00Z") == T0
    assert parse_time("2024-05-01T14:00:00.123456+02:00") == T0 + timedelta(microseconds=123456)
    assert format_time(datetime(2024, 5, 1, 12, 0)) == "2024-05-01T12:00:00Z"  # naive is UTC
