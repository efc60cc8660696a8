"""The rollout controller's memory of its own writes until the device index shows them."""

from __future__ import annotations

from modelfleet.operator.rollout.expectations import Expectations
from tests.unit.planner.builders import NAME, make_assignment, make_view

NS = "fleet"


def test_a_written_assignment_is_seen_before_the_watch_echoes_it() -> None:
    expectations = Expectations(ttl_s=30)
    expectations.expect((NS, "d1"), NAME, make_assignment(2), now=0)
    [seen] = expectations.overlay(NS, [make_view("d1", revision=1)], now=1)
    assert seen.models[NAME] == make_assignment(2)
    assert expectations.pending() == 1


def test_the_expectation_ends_once_the_index_shows_the_write() -> None:
    expectations = Expectations(ttl_s=30)
    expectations.expect((NS, "d1"), NAME, make_assignment(2), now=0)
    echoed = make_view("d1", revision=2)
    [seen] = expectations.overlay(NS, [echoed], now=1)
    assert seen is echoed
    assert expectations.pending() == 0
    [later] = expectations.overlay(NS, [make_view("d1", revision=1)], now=2)
    assert later.models[NAME].revision == 1


def test_an_expectation_the_index_never_confirms_expires() -> None:
    expectations = Expectations(ttl_s=30)
    expectations.expect((NS, "d1"), NAME, make_assignment(2), now=0)
    [seen] = expectations.overlay(NS, [make_view("d1", revision=1)], now=31)
    assert seen.models[NAME].revision == 1
    assert expectations.pending() == 0


def test_a_released_slot_disappears_at_once() -> None:
    expectations = Expectations(ttl_s=30)
    expectations.expect((NS, "d1"), NAME, None, now=0)
    [seen] = expectations.overlay(NS, [make_view("d1", revision=1)], now=1)
    assert NAME not in seen.models


def test_other_namespaces_and_devices_are_left_alone_and_vanished_devices_forgotten() -> None:
    expectations = Expectations(ttl_s=30)
    expectations.expect((NS, "gone"), NAME, make_assignment(2), now=0)
    expectations.expect(("elsewhere", "d1"), NAME, make_assignment(2), now=0)
    untouched = make_view("d1", revision=1)
    assert expectations.overlay(NS, [untouched], now=1) == [untouched]
    assert expectations.pending() == 1
