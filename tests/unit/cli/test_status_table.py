"""`modelfleet status` rows: one per target, worst error and speedup shown."""

from __future__ import annotations

import datetime as dt

from modelfleet.status import age, as_list, conversion_rows, deployment_rows

NOW = dt.datetime(2026, 11, 21, 12, 0, tzinfo=dt.UTC)


def test_rows_show_each_target_with_its_metrics() -> None:
    item = {
        "metadata": {"namespace": "ml", "name": "cls", "creationTimestamp": "2026-11-21T11:00:00Z"},
        "spec": {"targets": [{"format": "onnx"}, {"format": "onnx-int8"}]},
        "status": {
            "phase": "Succeeded",
            "conditions": [{"type": "Ready", "status": "True", "reason": "Approved"}],
            "validation": [
                {"format": "onnx", "passed": True, "maxAbs": 3.2e-7, "cosine": 1.0, "speedup": 1.8},
                {"format": "onnx-int8", "passed": True, "maxAbs": 0.04, "cosine": 0.9991},
            ],
        },
    }
    first, second = conversion_rows([item], NOW)
    assert first == [
        "ml",
        "cls",
        "Succeeded",
        "onnx",
        "3.20e-07",
        "1.000000",
        "1.80x",
        "Approved",
        "1h",
    ]
    assert second[:4] == ["", "", "", "onnx-int8"]
    assert second[4:7] == ["4.00e-02", "0.999100", "-"]


def test_pending_conversion_without_status() -> None:
    item = {
        "metadata": {"namespace": "ml", "name": "new"},
        "spec": {"targets": [{"format": "onnx"}]},
    }
    (row,) = conversion_rows([item], NOW)
    assert row[2] == "Pending" and row[4] == "-" and row[-1] == "-"


def test_age_units() -> None:
    assert age("2026-11-21T11:59:15Z", NOW) == "45s"
    assert age("2026-11-21T11:48:00Z", NOW) == "12m"
    assert age("2026-11-16T12:00:00Z", NOW) == "5d"


def test_deployment_rows_show_wave_and_counts() -> None:
    item = {
        "metadata": {"namespace": "ml", "name": "cam", "creationTimestamp": "2026-11-21T11:58:00Z"},
        "spec": {"strategy": {"waves": [1, "50%", "100%"]}},
        "status": {
            "phase": "Progressing",
            "currentRevision": 3,
            "stableRevision": 2,
            "wave": 1,
            "counts": {"targeted": 20, "updated": 10, "healthy": 9, "inFlight": 1},
        },
    }
    (row,) = deployment_rows([item], NOW)
    assert row == ["ml", "cam", "Progressing", "3/2", "2/3", "20", "10", "9", "0", "1", "0", "2m"]


def test_wide_rows_add_the_ready_message_once_per_object() -> None:
    item = {
        "metadata": {"namespace": "ml", "name": "cls", "managedFields": [{"manager": "kubectl"}]},
        "spec": {"targets": [{"format": "onnx"}, {"format": "onnx-fp16"}]},
        "status": {
            "phase": "Failed",
            "conditions": [{"type": "Ready", "reason": "InvalidModel", "message": "no model"}],
        },
    }
    first, second = conversion_rows([item], NOW, wide=True)
    assert (first[-1], second[-1]) == ("no model", "")
    assert len(conversion_rows([item], NOW)[0]) == len(first) - 1
    listed = as_list([item], [])
    assert listed["kind"] == "List" and "managedFields" not in listed["items"][0]["metadata"]
    assert item["metadata"]["managedFields"]  # the input is left as it was
