"""The namespaces one operator (one shard) watches, as the chart's `watchNamespaces` sets them."""

from __future__ import annotations

import pytest

from modelfleet.operator.settings import NAMESPACES_ENV, OperatorSettings, watched_namespaces


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", ()),
        ("fleet-eu", ("fleet-eu",)),
        ("fleet-eu,fleet-us", ("fleet-eu", "fleet-us")),
        (" fleet-eu , ,fleet-us,", ("fleet-eu", "fleet-us")),
    ],
)
def test_watched_namespaces_come_from_one_variable(value: str, expected: tuple[str, ...]) -> None:
    assert watched_namespaces({NAMESPACES_ENV: value}) == expected
    assert OperatorSettings.from_env({NAMESPACES_ENV: value}).namespaces == expected


def test_no_variable_means_cluster_wide() -> None:
    assert watched_namespaces({}) == ()
