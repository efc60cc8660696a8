"""Helpers shared by test suites (importable as `support`).

Where test helpers live: functions that build a test's inputs are named `make_*`. Builders
that the files of one test folder share live in that folder's `builders.py` (e.g.
tests/unit/planner/builders.py), builders and handles that several folders share live here,
and a builder used by one file stays in it. `conftest.py` holds fixtures only and is never
imported as a module.
"""
